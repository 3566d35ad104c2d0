"""Articulatory phantom: speech acoustics, trajectories, files read back through the readers, caching,
determinism and the learnability of the image-sound pairing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from articulate.phantom import ensure_phantom, generate, load_subject
from articulate.phantom.anatomy import Subject
from articulate.phantom.trajectories import load_trajectory, make_trajectory

MALE = Subject(id="m", sex="m", vtl_cm=17.5, palate_mm=0.0, tongue_size=1.0, head_rot_deg=0.0,
               head_shift_mm=(0.0, 0.0), f0_hz=110.0, jitter=0.005, shimmer=0.03, breathiness=0.03, rate=1.0,
               intensity=1.0, tag_phase_mm=(0.0, 0.0), probe_shift_mm=(0.0, 0.0), probe_tilt_deg=0.0)


def _lpc_formants(seg: np.ndarray, sr: int, order: int = 12) -> np.ndarray:
    import librosa

    x = librosa.resample(seg.astype(np.float64), orig_sr=sr, target_sr=8000)
    x = np.append(x[0], x[1:] - 0.7 * x[:-1]) * np.hamming(len(x))
    roots = np.roots(librosa.lpc(x, order=order))
    roots = roots[np.imag(roots) > 0]
    freq = np.angle(roots) * 8000 / (2 * np.pi)
    bw = -8000 / np.pi * np.log(np.abs(roots))
    return np.sort(freq[(bw < 500) & (freq > 150)])


@pytest.mark.parametrize("vowel", ["a", "ee", "oo", "eh"])
def test_vowel_formants_match_the_articulatory_targets(vowel):
    from articulate.phantom.speech import synthesize

    rng = np.random.default_rng(1)
    sr = 22050
    traj = make_trajectory(vowel, MALE, rng)
    wav = synthesize(traj, MALE, sr, int(traj.duration * sr), rng)
    ph, a, b = [s for s in traj.segments if s[0] != "sil"][0]
    mid = 0.5 * (a + b)
    seg = wav[int((mid - 0.03) * sr): int((mid + 0.03) * sr)]
    target = traj.formants[:2, int(mid * 1000)]
    found = _lpc_formants(seg, sr)
    for f in target:  # each intended formant has an LPC resonance within 12 % (50 Hz: LPC's F1 bias near F0)
        assert np.min(np.abs(found - f)) < max(0.12 * f, 50.0), (vowel, target, found)


def test_speech_has_closures_bursts_and_frication():
    from articulate.phantom.speech import synthesize

    rng = np.random.default_rng(2)
    sr = 22050
    traj = make_trajectory("asouk", MALE, rng)
    wav = synthesize(traj, MALE, sr, int(traj.duration * sr), rng)
    seg = {p: (s, e) for p, s, e in traj.segments}

    def rms(s, e):
        return float(np.sqrt(np.mean(wav[int(s * sr): int(e * sr)] ** 2)))

    def hf_share(s, e):
        spec = np.abs(np.fft.rfft(wav[int(s * sr): int(e * sr)])) ** 2
        f = np.fft.rfftfreq(int(e * sr) - int(s * sr), 1 / sr)
        return spec[f > 3000].sum() / spec.sum()

    ks, ke = seg["k"]
    assert rms(ks + 0.2 * (ke - ks), ke - 0.15 * (ke - ks)) < 0.1 * rms(*seg["u"])  # silent /k/ closure
    assert rms(ke, ke + 0.015) > 5 * rms(ks + 0.3 * (ke - ks), ke - 0.3 * (ke - ks))  # release burst
    assert hf_share(*seg["s"]) > 0.8 > 0.2 > hf_share(*seg["u"])  # /s/ hisses, /u/ does not
    assert rms(0.0, seg["@"][0] - 0.03) < 0.01 * rms(*seg["u"])  # leading silence


def test_coarticulation_and_timing_vary_between_repetitions():
    rng = np.random.default_rng(3)
    reps = [make_trajectory("asouk", MALE, rng) for _ in range(5)]
    a = reps[0]
    g = make_trajectory("ageese", MALE, rng)
    mid = lambda tr, ph: int(1000 * np.mean([(s + e) / 2 for p, s, e in tr.segments if p == ph]))  # noqa: E731
    # /k/ after /u/ is articulated far back, /g/ before /i/ fronted: same targets, different context
    assert a.art["tb_back"][mid(a, "k")] > g.art["tb_back"][mid(g, "g")] + 0.3
    assert a.art["tb_height"][mid(a, "k")] > 0.8 and g.art["tb_height"][mid(g, "g")] > 0.8
    # repetitions differ in timing; motion is smooth (no jumps between 1 ms samples)
    assert np.std([r.segments[3][2] - r.segments[1][1] for r in reps]) > 0.004  # /@/ onset to /u/ offset
    assert max(np.max(np.abs(np.diff(v))) for v in a.art.values()) < 0.05


@pytest.fixture(scope="module")
def mri_cohort(tmp_path_factory) -> Path:
    return generate("mri2audio", tmp_path_factory.mktemp("mri") / "cohort", subjects=3, quiet=True, workers=1,
                    word_shares=[2, 1])


@pytest.fixture(scope="module")
def uti_cohort(tmp_path_factory) -> Path:
    return generate("wav2uti", tmp_path_factory.mktemp("uti") / "cohort", subjects=1, quiet=True, workers=1,
                    vowels=1, words=1, sentences=0)


def test_mri_cohort_reads_back_through_the_readers(mri_cohort):
    from articulate.readers.audio import read_audio
    from articulate.readers.dataset_index import index_dataset
    from articulate.readers.mri import read_mri

    recs = index_dataset(mri_cohort)
    assert [r.utterance for r in recs] == ["asouk", "asouk", "ageese"]
    for r in recs:
        seq = read_mri(r.image)
        wav, sr = read_audio(r.audio)
        assert seq.frames.shape == (26, 128, 128) and seq.frames.min() >= 0 and seq.frames.max() <= 1
        assert seq.pixel_mm == pytest.approx((1.87, 1.87))
        assert sr == 22050 and 21832 <= len(wav) <= 24175
        assert seq.frame_s == pytest.approx(len(wav) / sr / 26, rel=1e-4)  # the 26 frames span the audio
        traj = load_trajectory(Path(mri_cohort) / r.extra["traj"])
        assert traj.duration == pytest.approx(len(wav) / sr, abs=2e-3)


def test_mri_tags_fade_and_tongue_moves_while_anatomy_stays(mri_cohort):
    from articulate.phantom import head
    from articulate.readers.mri import read_mri

    rec = sorted(Path(mri_cohort).glob("S001/*.nii.gz"))[0]
    frames = read_mri(rec).frames
    subject = load_subject(rec.with_name(rec.name.replace(".nii.gz", ".traj.npz")))
    spacing_px = 8.5 / 1.87

    def tag_power(img):  # spectral power at the tag frequency along rows, in the brain
        rows = img[10:40, 40:104] - img[10:40, 40:104].mean()
        spec = np.abs(np.fft.rfft(rows, axis=1)).mean(0)
        k = int(round(64 / spacing_px))
        return spec[k - 1: k + 2].max() / np.median(spec)

    assert tag_power(frames[0]) > 2.0 * tag_power(frames[-1]) and tag_power(frames[0]) > 4.0
    # where the tongue is (reference mm -> pixels) frames change far more than in the brain
    tongue_px = head.reference_to_image(np.array([84.0, 115.0]), subject) / 1.87
    r, c = int(tongue_px[1]), int(tongue_px[0])
    diff = np.abs(np.diff(frames, axis=0)).mean(0)
    assert diff[r - 8: r + 8, c - 8: c + 8].mean() > 1.5 * diff[15:35, 60:90].mean()


def test_ultrasound_cohort_reads_back_and_shows_the_tongue(uti_cohort):
    from articulate.readers.dataset_index import index_dataset
    from articulate.readers.ultrasound import FanConverter, read_param, read_utterance

    recs = index_dataset(uti_cohort)
    assert len(recs) == 2 and all(r.kind == "ultrasound" for r in recs)
    for r in recs:
        params = read_param(r.param)
        assert params.fps == 60 and params.time_first_frame > 0
        assert (params.num_vectors, params.pix_per_vector) == (64, 256)
        utt = read_utterance(r.image)
        assert utt.sr == 16000 and utt.scanlines.dtype == np.uint8
        assert utt.text == r.transcript and utt.speaker == "spk01"
        fan = FanConverter(utt.params, size=(128, 128))(utt.scanlines[:3].astype(np.float32))
        assert fan.shape == (3, 128, 128) and fan.max() > 150
        # per scan line: a bright surface echo with an acoustic shadow beyond it
        scan = utt.scanlines.astype(np.float64)
        echo = scan[:, :, 30:].argmax(axis=2) + 30  # beyond the 10 mm near field
        mid = scan[:, 20:44]
        e = echo[:, 20:44]
        j = np.arange(scan.shape[2])
        before = np.where(j < e[..., None] - 6, mid, np.nan)
        after = np.where(j > e[..., None] + 10, mid, np.nan)
        assert np.nanmean(after) < 0.5 * np.nanmean(before)
        # the surface moves during the utterance (more than speckle would move it)
        assert np.ptp(np.median(echo[:, 24:40], axis=1)) > 6


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    opts = dict(subjects=1, quiet=True, workers=1)
    a = generate("mri2audio", tmp_path / "a", seed=5, **opts)
    b = generate("mri2audio", tmp_path / "b", seed=5, **opts)
    c = generate("mri2audio", tmp_path / "c", seed=6, **opts)
    digest = lambda p: hashlib.sha1(p.read_bytes()).hexdigest()  # noqa: E731
    for name in ("S001/asouk.wav", "S001/asouk.nii.gz"):
        assert digest(a / name) == digest(b / name)
        assert digest(a / name) != digest(c / name)


def test_ensure_phantom_caches_atomically():
    from articulate.paths import cache_dir

    first = ensure_phantom("wav2uti", subjects=1, vowels=1, words=0, sentences=0)
    stamp = (first / "manifest.csv").stat().st_mtime_ns
    again = ensure_phantom("wav2uti", subjects=1, vowels=1, words=0, sentences=0)
    assert again == first and (first / "manifest.csv").stat().st_mtime_ns == stamp
    assert first.parent == cache_dir() / "phantom" and first.name.startswith("wav2uti-")
    other = ensure_phantom("wav2uti", subjects=1, vowels=1, words=0, sentences=0, seed=1)
    assert other != first
    assert not [p for p in first.parent.iterdir() if p.is_dir() and p.name.startswith(".")]  # no temp leftovers


def test_bad_options_are_input_errors(tmp_path):
    from articulate.errors import InputError

    with pytest.raises(InputError, match="lexicon"):
        generate("mri2audio", tmp_path, subjects=1, words=["blorp"])
    with pytest.raises(InputError, match="unknown"):
        generate("mri2audio", tmp_path, subjects=1, fps=3)
    with pytest.raises(InputError, match="kind"):
        generate("ct", tmp_path)


def test_cli_writes_and_previews(tmp_path, mri_cohort):
    from articulate.cli.main import main

    assert main(["phantom", "preview", str(mri_cohort), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["phantom", "wav2uti", "--out", str(tmp_path / "u"), "--subjects", "1", "--vowels", "1",
                 "--words", "0", "--sentences", "0", "--quiet", "--workers", "1"]) == 0
    assert (tmp_path / "u" / "manifest.csv").is_file()


def test_concurrent_ensure_phantom_generates_once(monkeypatch):
    """Two callers at once (e.g. two DDP ranks): one generates, the other waits and reuses it."""
    from concurrent.futures import ThreadPoolExecutor

    from articulate.phantom import cohort

    calls = []
    real = cohort.generate

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cohort, "generate", counting)
    opts = dict(subjects=1, vowels=1, words=0, sentences=0, seed=7, workers=1)
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: ensure_phantom("wav2uti", **opts), range(2)))
    assert paths[0] == paths[1] and (paths[0] / "manifest.csv").is_file()
    assert len(calls) == 1
