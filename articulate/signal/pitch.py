"""F0 of a recording on the mel frames' clock, for models that learn to read pitch.

The targets are tracked from the audio itself (probabilistic YIN, librosa's ``pyin``), so real recordings
get them exactly as the phantom does; no ground truth is needed. F0 is given in semitones re
:data:`REFERENCE_HZ`, with a voiced flag per frame: unvoiced frames carry the value interpolated between
their voiced neighbours (finite everywhere) and are left out of any loss by the flag.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

from articulate.signal.mel import MelConfig

REFERENCE_HZ = 100.0


def hz_to_semitones(f0_hz):
    return 12.0 * np.log2(np.asarray(f0_hz, dtype=np.float64) / REFERENCE_HZ)


def semitones_to_hz(semitones):
    """Works on numpy arrays and torch tensors alike."""
    return REFERENCE_HZ * 2.0 ** (semitones / 12.0)


@dataclass(frozen=True)
class PitchTrack:
    """``semitones [K]`` float32 (finite) and ``voiced [K]`` bool at samples ``k * hop`` of the recording."""

    semitones: np.ndarray
    voiced: np.ndarray
    hop: int

    def at(self, start: int, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """The track read at the frames of a crop starting at sample ``start`` (frame ``i`` at ``start + i * hop``,
        as a ``center=True`` mel of the crop places them): linear in semitones, voiced where the nearer
        tracked frame is."""
        pos = (float(start) + np.arange(n_frames) * self.hop) / self.hop
        k = np.arange(len(self.semitones))
        st = np.interp(pos, k, self.semitones).astype(np.float32)
        near = np.clip(np.rint(pos).astype(np.int64), 0, len(self.voiced) - 1)
        return st, self.voiced[near].copy()


def track_pitch(audio: np.ndarray, mel: MelConfig, fmin: float = 60.0, fmax: float = 400.0) -> PitchTrack:
    """pYIN F0 of ``audio`` (at ``mel.sr``) every ``mel.hop_length`` samples, analysis frames of ``mel.n_fft``.

    60-400 Hz covers adult and most children's speaking voices; the analysis frame must hold two periods of
    ``fmin`` (1024 samples at 22,050 Hz: 46 ms, fmin >= 44 Hz)."""
    sr, hop, n_fft = int(mel.sr), int(mel.hop_length), int(mel.n_fft)
    if 2 * sr / fmin > n_fft:
        raise ValueError(f"track_pitch: fmin {fmin} Hz needs a frame of {2 * sr / fmin:.0f} samples, n_fft is {n_fft}")
    y = np.asarray(audio, dtype=np.float32)
    f0, voiced, _ = librosa.pyin(y, fmin=fmin, fmax=fmax, sr=sr, frame_length=n_fft, hop_length=hop, center=True)
    voiced = np.asarray(voiced, dtype=bool) & np.isfinite(f0)
    k = np.arange(len(f0))
    if voiced.any():
        st = np.interp(k, k[voiced], hz_to_semitones(f0[voiced]))
    else:  # silence or noise: any finite value; every frame is unvoiced
        st = np.zeros(len(f0))
    return PitchTrack(st.astype(np.float32), voiced, hop)
