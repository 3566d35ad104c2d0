"""Metrics against independent references: numpy closed forms, the pesq package, scipy, lpips."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from articulate.errors import MissingPretrainedError
from articulate.metrics import functional as Fm


# ----------------------------------------------------------------------------- references
def corr2_numpy(a: np.ndarray, b: np.ndarray) -> float:
    """MATLAB corr2, written from its documented formula."""
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))


def frechet_scipy(x: np.ndarray, y: np.ndarray) -> float:
    """The pytorch-fid / TTUR formula with scipy.linalg.sqrtm."""
    import scipy.linalg

    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


# ----------------------------------------------------------------------------- functional
def test_corr2d_matches_matlab_formula_per_image():
    rng = np.random.default_rng(0)
    a = rng.random((3, 1, 12, 9))
    b = 0.6 * a + 0.4 * rng.random((3, 1, 12, 9))
    r = Fm.corr2d(torch.from_numpy(a), torch.from_numpy(b))
    assert r.shape == (3,)
    np.testing.assert_allclose(r.numpy(), [corr2_numpy(a[i, 0], b[i, 0]) for i in range(3)], rtol=1e-12)
    # a bare 2D array is one image; a video [B, 1, T, H, W] is B*T images
    assert Fm.corr2d(torch.from_numpy(a[0, 0]), torch.from_numpy(b[0, 0])).shape == (1,)
    v = torch.rand(2, 1, 5, 8, 8)
    assert Fm.corr2d(v, v + 0.1 * torch.rand_like(v)).shape == (10,)
    # corr2 is invariant to affine changes of either image and -1 for a negated one
    assert float(Fm.corr2d(torch.from_numpy(a), torch.from_numpy(3 * a + 2))[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(Fm.corr2d(torch.from_numpy(a), torch.from_numpy(-a))[0]) == pytest.approx(-1.0, abs=1e-12)


def test_corr2d_constant_image_is_undefined_and_gradients_stay_finite():
    c = torch.ones(1, 4, 4)
    x = torch.rand(1, 4, 4, requires_grad=True)
    assert torch.isnan(Fm.corr2d(x, c)).all()
    r = Fm.corr2d(x, c, undefined=0.0)
    assert float(r.detach()) == 0.0
    y = torch.rand(2, 4, 4)
    (Fm.corr2d(torch.cat([x, x]), torch.cat([c, y[:1]]), undefined=0.0).sum()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("pixel_range,to255", [("unit", lambda x: x * 255), ("signed", lambda x: (x + 1) * 127.5),
                                               ("byte", lambda x: x)])
def test_rmse_psnr_closed_form_on_0_255(pixel_range, to255):
    rng = np.random.default_rng(1)
    lo, hi = {"unit": (0, 1), "signed": (-1, 1), "byte": (0, 255)}[pixel_range]
    a = rng.uniform(lo, hi, (2, 1, 3, 10, 11))
    b = np.clip(a + rng.normal(0, 0.05 * (hi - lo), a.shape), lo, hi)
    pa, pb = to255(a).reshape(-1, 10 * 11), to255(b).reshape(-1, 10 * 11)
    mse = ((pa - pb) ** 2).mean(axis=1)
    got_rmse = Fm.rmse(torch.from_numpy(b), torch.from_numpy(a), pixel_range=pixel_range)
    got_psnr = Fm.psnr(torch.from_numpy(b), torch.from_numpy(a), pixel_range=pixel_range)
    np.testing.assert_allclose(got_rmse.numpy(), np.sqrt(mse), rtol=1e-10)
    np.testing.assert_allclose(got_psnr.numpy(), 10 * np.log10(255.0**2 / mse), rtol=1e-10)


def test_detail_ratio_is_the_high_pass_energy_ratio_of_scipy_box_filters():
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(4)
    target = rng.normal(0, 0.3, (2, 3, 12, 10))
    smooth = uniform_filter(target, size=(1, 1, 5, 5), mode="nearest")  # a blurred version: less fine detail
    pred = 0.6 * smooth + 0.4 * rng.normal(0, 0.3, target.shape)

    def hp(x):  # the image minus its 3 x 3 mean, interior pixels only
        return (x - uniform_filter(x, size=(1, 1, 3, 3), mode="constant"))[..., 1:-1, 1:-1].reshape(6, -1)

    want = np.sqrt((hp(pred) ** 2).mean(1) / (hp(target) ** 2).mean(1))
    got = Fm.detail_ratio(torch.from_numpy(pred), torch.from_numpy(target))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    # a frame against itself: 1; a blur of it: well below; a constant target: undefined
    torch.testing.assert_close(Fm.detail_ratio(torch.from_numpy(target), torch.from_numpy(target)),
                               torch.ones(6, dtype=torch.float64))
    assert (Fm.detail_ratio(torch.from_numpy(smooth), torch.from_numpy(target)) < 0.5).all()
    assert torch.isnan(Fm.detail_ratio(torch.ones(1, 5, 5), torch.ones(1, 5, 5))).all()


def test_pixel_range_clamps_like_an_8bit_image_and_is_required():
    pred, target = torch.full((1, 2, 2), 1.5), torch.ones(1, 2, 2)
    assert float(Fm.rmse(pred, target, pixel_range="unit")) == 0.0  # 1.5 saturates at 255
    assert float(Fm.rmse(pred, target, pixel_range="unit", clamp=False)) == pytest.approx(127.5)
    with pytest.raises(TypeError):
        Fm.rmse(pred, target)  # the scale must be stated
    with pytest.raises(ValueError, match="pixel_range"):
        Fm.psnr(pred, target, pixel_range="0-1")
    assert math.isinf(float(Fm.psnr(target, target, pixel_range="unit")))


# ----------------------------------------------------------------------------- DDP padding
def _padded_rank_batches(n: int, world: int, batch: int):
    """Per-rank index batches exactly as DistributedSampler (shuffle off) hands them out."""
    ds = list(range(n))
    out = []
    for rank in range(world):
        idx = list(DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=False))
        out.append([idx[i:i + batch] for i in range(0, len(idx), batch)])
    return out


@pytest.mark.parametrize("world", [2, 3, 4])
def test_sample_index_removes_distributed_sampler_padding_bias(world):
    """Feeding every rank's batches (what the DDP gather concatenates) gives the single-process value
    exactly when sample_index is passed, and a biased value without it."""
    from articulate.metrics import RMSE, Corr2D

    n = 10  # 10 is not a multiple of 3 or 4: the sampler repeats samples 0.. to pad
    g = torch.Generator().manual_seed(0)
    target = torch.rand(n, 1, 8, 8, generator=g)
    pred = target * torch.linspace(0.2, 2, n)[:, None, None, None] + 0.3 * torch.rand(n, 1, 8, 8, generator=g)
    for cls, kw in ((Corr2D, {}), (RMSE, {"pixel_range": "unit"})):
        single = cls(**kw)
        single.update(pred, target, sample_index=torch.arange(n))
        keyed, unkeyed = cls(**kw), cls(**kw)
        for rank_batches in reversed(_padded_rank_batches(n, world, 3)):  # rank order must not matter
            for b in rank_batches:
                keyed.update(pred[b], target[b], sample_index=torch.tensor(b))
                unkeyed.update(pred[b], target[b])
        assert float(keyed.compute()) == float(single.compute())  # bit-identical
        if n % world:
            assert float(unkeyed.compute()) != pytest.approx(float(single.compute()), rel=1e-9)


def test_valid_mask_drops_rows_and_parts_follow_their_sample():
    from articulate.metrics import RMSE

    v = torch.rand(3, 1, 4, 8, 8)
    p = (v + 0.1).clamp(0, 1)
    ref = RMSE(pixel_range="unit")
    ref.update(p[:2], v[:2])
    m = RMSE(pixel_range="unit")
    m.update(p, v, sample_index=torch.tensor([0, 1, 2]), valid=torch.tensor([True, True, False]))
    assert m.num_rows() == 8  # 2 samples x 4 frames
    assert float(m.compute()) == pytest.approx(float(ref.compute()), rel=1e-12)
    with pytest.raises(ValueError, match="sample_index has 2 entries"):
        m.update(p, v, sample_index=torch.tensor([0, 1]))


# ----------------------------------------------------------------------------- PESQ
@pytest.fixture(scope="module")
def speech():
    from pathlib import Path

    import soundfile as sf

    path = Path(__file__).resolve().parents[2] / "shared" / "samples" / "ultrasuite-upx" / "sample.wav"
    if path.is_file():
        wav, sr = sf.read(str(path), dtype="float32")
        return [wav[int(s * sr):int((s + 1.5) * sr)] for s in (1.0, 3.0, 5.0)], sr
    from test_callbacks import speech_like

    return [speech_like(1.5, i, 22050) for i in range(3)], 22050


@pytest.mark.parametrize("mode", ["wb", "nb"])
def test_pesq_matches_direct_pesq_call_on_the_same_16k_signals(speech, mode):
    import pesq as pesq_pkg

    from articulate.metrics import PESQ
    from articulate.signal.resample import resample

    refs, sr = speech
    rng = np.random.default_rng(0)
    degs = [r + (0.01 + 0.02 * i) * rng.standard_normal(len(r)).astype(np.float32) for i, r in enumerate(refs)]
    expect = []
    for r, d in zip(refs, degs):
        r16, d16 = resample(r, sr, 16000), resample(d, sr, 16000)
        expect.append(pesq_pkg.pesq(16000, r16, d16, mode))
    m = PESQ(mode=mode, num_workers=1)
    m.update(torch.from_numpy(np.stack(degs)), torch.from_numpy(np.stack(refs)), sr, sample_index=torch.arange(3))
    assert float(m.compute()) == pytest.approx(float(np.mean(expect)), abs=1e-6)
    assert m.failed == 0 and m.scored == 3
    assert max(expect) - min(expect) > 0.05  # distinct scores per pair, so the mean is a real check


def test_pesq_worker_pool_gives_the_serial_scores(speech):
    from articulate.metrics.pesq import pesq_batch

    refs, sr = speech
    refs = refs * 2
    degs = [0.8 * r + 0.02 * np.sin(np.arange(len(r)) * (0.1 + 0.05 * i)).astype(np.float32) for i, r in enumerate(refs)]
    serial, _ = pesq_batch(refs, degs, sr, num_workers=1)
    pooled, errors = pesq_batch(refs, degs, sr, num_workers=2, min_parallel=2)
    assert pooled == serial and not any(errors)


def test_pesq_failures_are_reported_and_excluded(speech):
    from articulate.metrics import PESQ

    refs, sr = speech
    m = PESQ(num_workers=1)
    m.update(torch.zeros(1, len(refs[0])), torch.from_numpy(refs[0][None]), sr, sample_index=torch.tensor([4]))
    m.update(torch.from_numpy(refs[1][None] * 0.9), torch.from_numpy(refs[1][None]), sr, sample_index=torch.tensor([5]))
    with pytest.warns(UserWarning, match=r"1 of 2 .*sample 4: NoUtterancesError"):
        value = float(m.compute())
    assert m.failed == 1 and m.scored == 1 and math.isfinite(value)
    m.reset()
    m.update(torch.zeros(1, 4000), torch.zeros(1, 4000), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(float(m.compute()))
    with pytest.raises(ValueError, match="mode"):
        PESQ(mode="swb")


# ----------------------------------------------------------------------------- Frechet
# (200, 8): the D x D eigen path; (30, 40) and (12, 300): low-rank covariances, the nuclear-norm path
@pytest.mark.parametrize("n,d", [(200, 8), (30, 40), (12, 300)])
def test_frechet_distance_matches_scipy_sqrtm(n, d):
    from articulate.metrics.frechet import frechet_distance_features

    rng = np.random.default_rng(d)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(n + 7, d)) @ rng.normal(size=(d, d)) * 0.5 + 0.3
    got = float(frechet_distance_features(torch.from_numpy(x), torch.from_numpy(y)))
    assert got == pytest.approx(frechet_scipy(x, y), rel=1e-6, abs=1e-6)
    assert float(frechet_distance_features(torch.from_numpy(x), torch.from_numpy(x))) == pytest.approx(0.0, abs=1e-6)


class _Extractor(torch.nn.Module):
    dim = 5
    comparable = True
    label = "test"

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(5, 1, 3, 3, generator=torch.Generator().manual_seed(3)))

    def forward(self, x):
        if x.ndim == 5:
            x = x.mean(2)
        return torch.nn.functional.conv2d(x, self.w).mean(dim=(2, 3)) + torch.nn.functional.conv2d(x, self.w).amax(dim=(2, 3))


def test_fid_and_fvd_equal_scipy_frechet_on_the_same_features():
    from articulate.metrics import FID, FVD

    g = torch.Generator().manual_seed(0)
    real = torch.rand(6, 1, 4, 12, 12, generator=g)
    fake = (real * 0.7 + 0.2 * torch.rand(6, 1, 4, 12, 12, generator=g)).clamp(0, 1)
    ext = _Extractor()
    fid = FID(extractor=ext)
    fid.update(fake[:4], real[:4], sample_index=torch.arange(4))
    fid.update(fake[4:], real[4:], sample_index=torch.arange(4, 6))
    with torch.no_grad():
        fr = ext(real.reshape(-1, 1, 12, 12)).double().numpy()
        ff = ext(fake.reshape(-1, 1, 12, 12)).double().numpy()
    assert float(fid.compute()) == pytest.approx(frechet_scipy(fr, ff), rel=1e-6)
    fvd = FVD(extractor=ext, clip_frames=2)  # 2 clips per video -> 12 clip features per set
    fvd.update(fake, real, sample_index=torch.arange(6))
    def clips(v):
        return v.reshape(6, 1, 2, 2, 12, 12).permute(0, 2, 1, 3, 4, 5).reshape(12, 1, 2, 12, 12)

    with torch.no_grad():
        vr, vf = ext(clips(real)).double().numpy(), ext(clips(fake)).double().numpy()
    assert float(fvd.compute()) == pytest.approx(frechet_scipy(vr, vf), rel=1e-6)
    # pixel_range="signed" on [-1, 1] inputs is the same metric
    fid2 = FID(extractor=ext, pixel_range="signed")
    fid2.update(fake * 2 - 1, real * 2 - 1, sample_index=torch.arange(6))
    assert float(fid2.compute()) == pytest.approx(float(fid.compute()), rel=1e-5)


# ----------------------------------------------------------------------------- backbones
@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache (and articulate cache): nothing pretrained is available."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ARTICULATE_CACHE", str(tmp_path / "articulate"))
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    return ckpt


def test_missing_weights_name_the_file_and_where_to_put_it(torch_home):
    from articulate.metrics import FID, FVD, LPIPS

    with pytest.raises(MissingPretrainedError, match=r"squeezenet1_1-b8a52dc0\.pth.*" + str(torch_home).replace("/", r"\/")):
        LPIPS()
    with pytest.raises(MissingPretrainedError, match=r"vgg16-397923af\.pth"):
        LPIPS(net="vgg")
    with pytest.raises(MissingPretrainedError, match=r"pt_inception-2015-12-05-6726825d\.pth"):
        FID()
    with pytest.raises(MissingPretrainedError, match=r"inception_v3_google-0cc3c7bd\.pth"):
        FID(weights="torchvision")
    with pytest.raises(MissingPretrainedError, match=r"i3d_torchscript\.pt or rgb_imagenet\.pt"):
        FVD()
    with pytest.raises(MissingPretrainedError, match="weights_path"):
        LPIPS(weights_path=str(torch_home / "nowhere.pth"))


def test_lpips_equals_the_lpips_package_with_the_same_trunk_weights(torch_home):
    """A squeezenet checkpoint in the hub cache is what both our loader and lpips/torchvision read."""
    import lpips
    import torchvision

    from articulate.metrics import LPIPS

    torch.manual_seed(0)
    torch_home.mkdir(parents=True)
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), torch_home / "squeezenet1_1-b8a52dc0.pth")
    ours = LPIPS(net="squeeze", pixel_range="unit")
    assert ours.comparable and "NOT COMPARABLE" not in ours.label
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net="squeeze", verbose=False).eval()  # torchvision loads the cached file
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 1, 3, 32, 32, generator=g), torch.rand(2, 1, 3, 32, 32, generator=g)
    with torch.no_grad():
        expect = ref(a.reshape(-1, 1, 32, 32).repeat(1, 3, 1, 1) * 2 - 1, b.reshape(-1, 1, 32, 32).repeat(1, 3, 1, 1) * 2 - 1)
    ours.update(a, b, sample_index=torch.arange(2))
    assert float(ours.compute()) == pytest.approx(float(expect.mean()), rel=1e-5)
    np.testing.assert_allclose(ours.distances(a, b).numpy(), expect.reshape(-1).numpy(), rtol=1e-5)


def test_random_init_features_are_labelled_not_comparable():
    from articulate.metrics import LPIPS

    m = LPIPS(random_init=True)
    assert not m.comparable and "NOT COMPARABLE" in m.label
    a, b = torch.rand(2, 1, 20, 20), torch.rand(2, 1, 20, 20)
    torch.testing.assert_close(m.distances(a, b), LPIPS(random_init=True).distances(a, b))  # seeded: repeatable
    with pytest.raises(ValueError, match="at least 18 px"):
        m.update(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_inception_loads_fid_weights_from_the_hub_cache(torch_home):
    from articulate.metrics.backbones import InceptionFeatures

    torch.manual_seed(0)
    rand = InceptionFeatures(random_init=True, input_size=75)
    assert not rand.comparable and "NOT COMPARABLE" in rand.label
    torch_home.mkdir(parents=True)
    torch.save(rand.net.state_dict(), torch_home / "pt_inception-2015-12-05-6726825d.pth")
    loaded = InceptionFeatures(input_size=75)  # found in the cache, strict load of every tensor
    x = torch.rand(2, 1, 40, 40, generator=torch.Generator().manual_seed(2))
    f = loaded(x)
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and f.std() > 0
    torch.testing.assert_close(f, rand(x))
    assert "input size" in loaded.label  # 75 px is not the FID protocol's 299


def test_i3d_state_dict_names_and_torchscript_detector(tmp_path):
    from articulate.metrics.backbones import I3DFeatures, InceptionI3d

    net = InceptionI3d(400)
    keys = set(net.state_dict())
    # the PyTorch I3D port's names, so its rgb_imagenet.pt loads strictly
    for k in ("Conv3d_1a_7x7.conv3d.weight", "Conv3d_1a_7x7.bn.running_var", "Mixed_3b.b1b.conv3d.weight",
              "Mixed_5c.b3b.bn.weight", "logits.conv3d.weight", "logits.conv3d.bias"):
        assert k in keys
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(12.3e6, rel=0.05)  # I3D RGB: ~12 M
    torch.save(net.state_dict(), tmp_path / "rgb_imagenet.pt")
    feats = I3DFeatures(weights_path=str(tmp_path), input_size=32)
    v = torch.rand(2, 1, 8, 24, 24)
    assert feats(v).shape == (2, 400)

    class Detector(torch.nn.Module):  # the StyleGAN-V TorchScript calling convention
        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            x = x / 127.5 - 1.0 if rescale else x
            return x.mean(dim=(2, 3, 4)).repeat(1, 134)[:, :400]

    torch.jit.script(Detector()).save(str(tmp_path / "i3d_torchscript.pt"))
    det = I3DFeatures(weights_path=str(tmp_path / "i3d_torchscript.pt"))
    out = det(torch.full((1, 1, 4, 8, 8), 0.5))
    assert out.shape == (1, 400) and torch.allclose(out, torch.zeros(1, 400), atol=1e-6)  # 0.5 -> 127.5 -> 0


def test_warped_corr2d_forgives_timing_only():
    """A spectrogram played a few frames late loses Corr2D but keeps corr2d_warped ~1; a wrong spectrum loses both;
    the warp is librosa's DTW path with the matched frames averaged."""
    import librosa

    from articulate.metrics.registry import metric_class
    from articulate.metrics.timing import WarpedCorr2D, warp_onto

    rng = np.random.default_rng(0)
    t = np.arange(64)
    target = np.stack([np.exp(-0.5 * ((t - 20 - 0.3 * f) / 3) ** 2) + np.exp(-0.5 * ((t - 44) / 4) ** 2) * (f % 7 == 0)
                       for f in range(32)])  # [F, T]: two events
    late = np.concatenate([target[:, :1].repeat(4, 1), target[:, :-4]], axis=1)
    other = rng.random((32, 64))
    np.testing.assert_allclose(warp_onto(target, target), target)
    _, path = librosa.sequence.dtw(X=target, Y=late, metric="euclidean")
    ref = np.stack([late[:, [j for i, j in path if i == k]].mean(1) for k in range(64)], 1)
    np.testing.assert_allclose(warp_onto(late, target), ref)
    m = metric_class("corr2d_warped")()
    assert isinstance(m, WarpedCorr2D)
    as_t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    m.update(as_t(late), as_t(target))
    plain = float(Fm.corr2d(as_t(late), as_t(target)).reshape(()))
    assert plain < 0.8 and float(m.compute()) > 0.99
    m = WarpedCorr2D()
    m.update(as_t(other), as_t(target))
    assert float(m.compute()) < 0.6


def test_per_sample_values_average_parts_drop_duplicates_and_nan():
    """``SampleMetric.per_sample``: each keyed sample's first column averaged over its parts, a padding duplicate
    ignored, NaN rows (a waveform PESQ could not score) left out, unkeyed rows absent; computed by hand."""
    from articulate.metrics import PSNR
    from articulate.metrics.corr2d import Corr2D

    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 2, 8, 8, generator=g)  # 3 samples x 2 frames (parts)
    pred = target + 0.1 * torch.rand(3, 2, 8, 8, generator=g)
    metric = PSNR(pixel_range="unit", clamp=False)
    metric.update(pred, target, sample_index=torch.tensor([4, 7, 9]))
    metric.update(pred[:1] + 0.5, target[:1], sample_index=torch.tensor([4]))  # a padding duplicate: the first wins
    per = metric.per_sample()
    mse = ((pred - target) ** 2).mean(dim=(2, 3))  # [3, 2]
    by_hand = (10 * torch.log10(1.0 / mse)).mean(dim=1)
    assert sorted(per) == [4, 7, 9]
    assert [per[k] for k in (4, 7, 9)] == pytest.approx(by_hand.tolist(), rel=1e-6)
    nan = Corr2D(undefined=float("nan"))  # a constant prediction has no correlation: NaN, left out
    nan.update(torch.ones(2, 1, 4, 4), torch.rand(2, 1, 4, 4, generator=g), sample_index=torch.tensor([0, 1]))
    nan.update(torch.rand(1, 1, 4, 4, generator=g), torch.rand(1, 1, 4, 4, generator=g))  # unkeyed: not a sample
    assert nan.per_sample() == {}
