"""wav2uti condition encoders and fusion: librosa parity, frame alignment, pretrained loading, masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from articulate.errors import MissingPretrainedError
from articulate.networks.wav2uti.encoders import (
    BertTextEncoder,
    CharacterTextEncoder,
    LogMelEncoder,
    Wav2Vec2Encoder,
    interpolate_to_frames,
)
from articulate.networks.wav2uti.fusion import AudioOnlyFusion, CrossAttentionFusion


def _tone(sr=16000, seconds=1.0, f=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_logmel_matches_librosa():
    import librosa

    wav = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    enc = LogMelEncoder(n_mels=40, n_fft=400, hop_length=160)
    ours = enc.power_mel(torch.from_numpy(wav)[None])[0].numpy()
    ref = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=400, hop_length=160, n_mels=40, center=True, pad_mode="constant")
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-6 * ref.max())


def test_interpolation_hits_frame_centres():
    # Encoder frame j centred at 0.01*j carries the value j; video frame i (fps 50) is centred at
    # (i + 0.5)/50 s, i.e. at encoder position 2i + 1.
    feats = torch.arange(100, dtype=torch.float32)[None, :, None]
    out = interpolate_to_frames(feats, 0.0, 0.01, 40, fps=50.0)
    np.testing.assert_allclose(out[0, :, 0].numpy(), 2 * np.arange(40) + 1, atol=1e-5)


def test_logmel_frame_count_and_alignment():
    # A 1 kHz burst between 0.5 s and 0.75 s must light up exactly video frames 30..44 at 60 fps.
    sr, fps = 16000, 60.0
    wav = np.zeros(sr, np.float32)
    seg = slice(int(0.5 * sr), int(0.75 * sr))
    wav[seg] = _tone(sr, 1.0, 1000.0)[seg]
    enc = LogMelEncoder()
    feats = enc(torch.from_numpy(wav)[None], fps=fps)
    assert feats.shape == (1, 60, 80)
    energy = feats[0].mean(-1).numpy()
    loud = np.flatnonzero(energy > energy.min() + 0.5 * (energy.max() - energy.min()))
    assert loud.min() in (29, 30) and loud.max() in (44, 45)
    assert feats.min() >= -1.0 and feats.max() <= 1.0


def _tiny_wav2vec2(path):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16, 16, 16, 16, 16, 16, 16), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                         do_stable_layer_norm=True, feat_extract_norm="layer")
    Wav2Vec2Model(cfg).save_pretrained(path)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(path)
    return path


def test_wav2vec2_tiny_saved_and_loaded(tmp_path):
    from transformers import Wav2Vec2Model

    path = _tiny_wav2vec2(tmp_path / "w2v")
    enc = Wav2Vec2Encoder(str(path), layer=1)
    assert enc.dim == 32 and enc.normalize and enc._stride == 320 and enc._receptive == 400
    wav = torch.from_numpy(_tone(seconds=0.5))[None]
    feats = enc(wav, fps=60.0)
    assert feats.shape == (1, 30, 32)
    # Independent reference: the model's own hidden state of layer 1 at frame 9 (centre 2920/16000 s)
    # equals our feature of video frame 5 (centre 5.5/60 s = 0.0917 s)? Compare a frame that lands exactly:
    ref_model = Wav2Vec2Model.from_pretrained(path).eval()
    x = (wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + 1e-7)
    with torch.no_grad():
        h = ref_model(x, output_hidden_states=True).hidden_states[1][0]
    # video frame i centre (i+.5)/60 s; encoder frame j centre (320 j + 200)/16000 s.
    # i = 23: 0.3917 s -> j = 18.96; linear blend of frames 18 and 19.
    pos = ((23.5 / 60) - 200 / 16000) / (320 / 16000)
    j = int(np.floor(pos))
    w = pos - j
    expect = h[j] * (1 - w) + h[j + 1] * w
    torch.testing.assert_close(feats[0, 23], expect, rtol=1e-4, atol=1e-5)
    # Frozen: no trainable parameters, stays in eval mode when the parent trains.
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.model.training
    assert "layer=1" in enc.cache_key()


def test_missing_pretrained_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(MissingPretrainedError) as err:
        Wav2Vec2Encoder("facebook/wav2vec2-definitely-not-cached")
    msg = str(err.value)
    assert "facebook/wav2vec2-definitely-not-cached" in msg and "huggingface-cli download" in msg and "local folder" in msg
    with pytest.raises(MissingPretrainedError, match="bert-not-here"):
        BertTextEncoder(str(tmp_path / "bert-not-here"))


def _tiny_bert(path):
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "mango", "and", "papaya", "are", "in", "a", "bowl", "."]
    path.mkdir(parents=True)
    (path / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(path)
    return path


def test_bert_tiny_saved_and_loaded(tmp_path):
    from transformers import BertModel, BertTokenizer

    path = _tiny_bert(tmp_path / "bert")
    enc = BertTextEncoder(str(path), layer=-1)
    feats, mask = enc(["The mango and the papaya are in a bowl.", "a bowl", ""])
    assert feats.shape[0] == 3 and feats.shape[2] == 16
    assert mask.sum(1).tolist() == [12, 4, 0]  # [CLS] + 9 words + "." + [SEP]; [CLS] a bowl [SEP]; nothing
    tok = BertTokenizer.from_pretrained(path)
    ref = BertModel.from_pretrained(path).eval()
    ids = tok(["a bowl"], return_tensors="pt")
    with torch.no_grad():
        expect = ref(**ids).last_hidden_state[0]
    torch.testing.assert_close(feats[1, :4], expect, rtol=1e-4, atol=1e-5)
    assert float(feats[2].abs().sum()) == 0.0


def test_character_encoder_handles_any_script_and_padding():
    torch.manual_seed(0)
    enc = CharacterTextEncoder(dim=32, num_layers=1, num_heads=4).eval()
    feats, mask = enc(["ab", "你好吗", ""])
    assert feats.shape == (3, 3, 32)
    assert mask.tolist() == [[True, True, False], [True, True, True], [False, False, False]]
    # Padding does not change a row's tokens: "ab" alone equals "ab" batched with a longer text.
    alone, _ = enc(["ab"])
    torch.testing.assert_close(feats[0, :2], alone[0], rtol=1e-5, atol=1e-6)
    assert torch.isfinite(feats).all() and float(feats[2].detach().abs().sum()) == 0.0


def test_cross_attention_fusion_shapes_and_masking():
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(audio_dim=10, text_dim=6, cond_dim=16, num_heads=4, num_layers=2).eval()
    audio = torch.randn(2, 12, 10)
    text = torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    cond, cmask = fusion(audio, text, mask)
    assert cond.shape == (2, 12, 16) and cmask.all()
    # Changing padding tokens changes nothing; changing a real token changes the output.
    text2 = text.clone()
    text2[0, 3:] = 100 * torch.randn(2, 6)
    torch.testing.assert_close(fusion(audio, text2, mask)[0], cond)
    text3 = text.clone()
    text3[0, 1] += 5.0
    assert not torch.allclose(fusion(audio, text3, mask)[0][0], cond[0])
    # No text at all == an all-padding transcript (the classifier-free-guidance null condition).
    none, _ = fusion(audio, None, None)
    allpad, _ = fusion(audio, text, torch.zeros_like(mask))
    torch.testing.assert_close(none, allpad)
    assert torch.isfinite(allpad).all()
    # Audio frames stay frame-aligned: perturbing frame 11 leaves frame 0 unchanged (context kernel 5).
    audio2 = audio.clone()
    audio2[:, 11] += 3.0 * torch.randn(10)  # (a constant shift would be removed by the input LayerNorm)
    out2, _ = fusion(audio2, text, mask)
    torch.testing.assert_close(out2[:, 0], cond[:, 0])
    assert not torch.allclose(out2[:, 11], cond[:, 11])


def test_audio_only_fusion():
    fusion = AudioOnlyFusion(audio_dim=10, cond_dim=8, context_kernel=3).eval()
    cond, mask = fusion(torch.randn(3, 7, 10))
    assert cond.shape == (3, 7, 8) and mask.shape == (3, 7) and mask.all()
