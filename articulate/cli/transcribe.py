"""``articulate transcribe DATA --model ID_OR_PATH``: Whisper transcripts cached beside the audio.

DATA is a dataset folder (anything :func:`articulate.readers.dataset_index.index_dataset` reads) or
one audio file. For every recording with audio, the transcript is written to
``<stem>.whisper.txt`` beside its ``.wav`` (atomically) unless that file already exists
(``--overwrite`` redoes it). The wav2uti DataModule reads them with ``transcript: whisper``, and
``synthesize-uti --whisper MODEL`` uses the same transcriber.

Whisper runs through ``transformers`` (``WhisperProcessor`` + ``WhisperForConditionalGeneration``,
any hub id in the local cache, e.g. ``openai/whisper-large-v3`` as the paper's "large Whisper", or a
local folder). Audio is resampled to 16 kHz, downmixed, and transcribed in 30-s chunks (Whisper's
input window), whose texts are joined.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from articulate.errors import InputError

_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class WhisperTranscriber:
    """``WhisperTranscriber(model)(wav16k) -> str``."""

    sample_rate = 16000
    chunk_s = 30.0

    def __init__(self, model: str, device: str = "cpu", language: str | None = None, max_new_tokens: int = 200):
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        from articulate.networks.wav2uti.encoders import load_pretrained

        self.processor = load_pretrained(WhisperProcessor, model, "Whisper processor")
        self.model = load_pretrained(WhisperForConditionalGeneration, model, "Whisper model").to(device).eval()
        # Whisper's decoder holds max_target_positions tokens, 4 of which are the task prefix.
        limit = int(getattr(self.model.config, "max_target_positions", 448)) - 5
        self.device, self.language, self.max_new_tokens = device, language, max(1, min(int(max_new_tokens), limit))
        self._torch = torch

    def __call__(self, wav16k: np.ndarray) -> str:
        n = int(self.chunk_s * self.sample_rate)
        texts = []
        for start in range(0, max(len(wav16k), 1), n):
            chunk = np.asarray(wav16k[start : start + n], dtype=np.float32)
            if chunk.size == 0 or not np.any(chunk):
                continue
            feats = self.processor(chunk, sampling_rate=self.sample_rate, return_tensors="pt").input_features
            kw = {"max_new_tokens": self.max_new_tokens, "task": "transcribe"}
            if self.language:
                kw["language"] = self.language
            with self._torch.no_grad():
                ids = self.model.generate(feats.to(self.device, self.model.dtype), **kw)
            texts.append(self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip())
        return " ".join(t for t in texts if t)


def transcript_path(audio: Path) -> Path:
    return audio.with_name(audio.stem + ".whisper.txt")


def audio_files(data: Path) -> list[Path]:
    if data.is_file():
        return [data]
    if not data.is_dir():
        raise InputError(data, "no such file or folder")
    from articulate.readers.dataset_index import index_dataset

    files = sorted({r.audio for r in index_dataset(data) if r.audio is not None})
    if not files:
        raise InputError(data, "no recordings with audio found")
    return files


def build_parser() -> argparse.ArgumentParser:
    from articulate.training import options as opt

    p = opt.Parser(prog="articulate transcribe", description=__doc__.split("\n\n")[0])
    opt.path(p, "data", role="input", help="dataset folder or audio file")
    opt.path(p, "--model", role="input", required=True, help="Whisper hub id (in the local cache) or local folder")
    p.add_argument("--language", default=None, help="force a language (e.g. zh, en); default: Whisper detects it")
    opt.device(p)
    p.add_argument("--overwrite", action="store_true", help="redo transcripts that already exist")
    opt.number(p, "--max-new-tokens", integer=True, low=1, high=448, default=200,
               help="longest transcript per 30-s chunk, in tokens (Whisper's decoder holds 448)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from articulate.readers.audio import read_audio
    from articulate.utils.atomic import atomic_path, check_not_inputs

    files = audio_files(Path(args.data))
    # a transcript name that is one of the inputs (an audio file or a link to one) is refused before any work
    check_not_inputs([transcript_path(f) for f in files], [*files, args.model])
    todo = [f for f in files if args.overwrite or not transcript_path(f).is_file()]
    print(f"{len(files)} recordings, {len(files) - len(todo)} already transcribed", file=sys.stderr)
    if not todo:
        return 0
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    asr = WhisperTranscriber(args.model, device=device, language=args.language, max_new_tokens=args.max_new_tokens)
    for f in todo:
        wav, _ = read_audio(f, sr=WhisperTranscriber.sample_rate)
        text = asr(wav)
        with atomic_path(transcript_path(f)) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
        print(f"{transcript_path(f)}: {text}")
    return 0
