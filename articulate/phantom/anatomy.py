"""Per-subject anatomy and voice.

One vocal-tract length drives both the size of the anatomy in the images and the formant scale
of the voice, so that (as in people) a longer tract shows up in both modalities (the imaged oral
anatomy by half as much as the formants, see :attr:`Subject.scale`). The larynx ties the voice's
pitch to the images too: the vocal-fold length (``larynx_mm``, longer in men and in longer tracts)
sets the mean F0 (F0 ~ 1/length, Titze 1994) and is drawn in the MRI as the antero-posterior
size of the larynx, whose height drops with the pharynx's length (:attr:`Subject.larynx_drop_mm`).
Everything else (palate height, tongue size, head pose, jitter, shimmer, breathiness, speaking
rate) varies independently per subject.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

REFERENCE_VTL_CM = 17.5
F0_FOLD_HZ_MM = 1900.0  # F0 = this / vocal-fold length: 16.5 mm -> 115 Hz, 9.3 mm -> 205 Hz


@dataclass(frozen=True)
class Subject:
    id: str
    sex: str  # "m" or "f"
    vtl_cm: float  # vocal-tract length
    palate_mm: float  # palate height offset (positive = higher vault)
    tongue_size: float  # tongue scale relative to the anatomy scale
    head_rot_deg: float  # in-plane head rotation in the image
    head_shift_mm: tuple[float, float]  # (x, y) head position in the image
    f0_hz: float  # mean F0
    jitter: float  # relative period-to-period F0 perturbation
    shimmer: float  # relative period-to-period amplitude perturbation
    breathiness: float  # aspiration noise mixed into the voiced source
    rate: float  # speaking-rate factor (>1 slower)
    intensity: float  # MRI proton-density / receive-coil gain
    tag_phase_mm: tuple[float, float]  # SPAMM grid phase
    probe_shift_mm: tuple[float, float]  # ultrasound probe placement under the chin
    probe_tilt_deg: float
    larynx_mm: float = 15.0  # membranous vocal-fold length (men ~16, women ~10 mm)

    @property
    def scale(self) -> float:
        """Size of the imaged (oral) anatomy relative to the reference head.

        Between speakers the pharynx accounts for most of the vocal-tract length difference
        (Fant 1966: female/male scale factors are larger for the pharynx than for the mouth),
        so the oral anatomy scales by about half the relative tract-length difference.
        """
        return 1.0 + 0.5 * (self.vtl_cm / REFERENCE_VTL_CM - 1.0)

    @property
    def larynx_drop_mm(self) -> float:
        """How much lower (reference mm) the larynx sits than in the 17.5 cm reference tract: the
        pharynx takes the part of a tract-length difference that the image scale does not."""
        return 0.5 * (self.vtl_cm - REFERENCE_VTL_CM) * 10.0 * 0.6

    @property
    def formant_scale(self) -> float:
        return REFERENCE_VTL_CM / self.vtl_cm

    def as_dict(self) -> dict:
        return asdict(self)


def sample_subject(rng: np.random.Generator, subject_id: str) -> Subject:
    """Draw one subject (about half female) from population ranges of adult speakers."""
    female = rng.random() < 0.5
    vtl = float(np.clip(rng.normal(14.8, 0.5) if female else rng.normal(17.3, 0.6), 13.5, 19.0))
    # vocal folds grow with the larynx, which grows with the tract; F0 follows the folds' length
    # with a little individual variation (tension, mass) on top
    fold = (9.6 if female else 16.0) * (vtl / (14.8 if female else 17.3)) ** 1.5 * float(np.exp(rng.normal(0, 0.05)))
    fold = float(np.clip(fold, 7.5, 20.0))
    f0 = F0_FOLD_HZ_MM / fold * float(np.exp(rng.normal(0.0, 0.03)))
    return Subject(
        id=subject_id,
        sex="f" if female else "m",
        vtl_cm=vtl,
        palate_mm=float(rng.normal(0.0, 1.5)),
        tongue_size=float(np.clip(rng.normal(1.0, 0.04), 0.9, 1.1)),
        head_rot_deg=float(rng.normal(0.0, 2.0)),
        head_shift_mm=(float(rng.normal(0.0, 2.5)), float(rng.normal(0.0, 2.5))),
        f0_hz=float(np.clip(f0, 80.0, 260.0)),
        jitter=float(rng.uniform(0.004, 0.012)),
        shimmer=float(rng.uniform(0.02, 0.06)),
        breathiness=float(rng.uniform(0.02, 0.10)),
        rate=float(np.clip(rng.normal(1.0, 0.08), 0.82, 1.2)),
        intensity=float(rng.uniform(0.85, 1.1)),
        tag_phase_mm=(float(rng.uniform(0, 8)), float(rng.uniform(0, 8))),
        # a stabilising headset holds the probe: placement differs little between speakers
        probe_shift_mm=(float(rng.normal(0.0, 0.8)), float(rng.normal(0.0, 0.6))),
        probe_tilt_deg=float(rng.normal(0.0, 1.0)),
        larynx_mm=fold,
    )
