"""EDM diffusion core: preconditioning, loss, Karras schedule, Heun sampler, guidance, long-form sampling."""

from .guidance import CFGDenoiser, guided
from .heun import HeunSampler
from .long_form import LongFormSampler, sample_independent_windows, seam_score, slice_frames, window_starts
from .loss import EDMLoss
from .precond import EDMPrecond, edm_coefficients, noise_augment
from .schedule import karras_sigmas, lognormal_sigmas
from .standardize import FrameStandardizer, SpeechPriorStandardizer

__all__ = [
    "CFGDenoiser", "EDMLoss", "EDMPrecond", "FrameStandardizer", "HeunSampler", "LongFormSampler", "SpeechPriorStandardizer", "edm_coefficients", "guided",
    "karras_sigmas", "lognormal_sigmas", "noise_augment", "sample_independent_windows", "seam_score",
    "slice_frames", "window_starts",
]
