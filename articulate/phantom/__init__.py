"""Articulatory phantom: synthetic tagged MRI, ultrasound and speech driven by one shared tongue motion.

``generate(kind, out_dir, ...)`` writes a cohort in the real file formats; ``ensure_phantom(kind, ...)``
returns a cached one. See :mod:`articulate.phantom.cohort`. Ground truth for other work:
``tongue_keypoints(recording, size)`` (wav2uti) and ``motion_region(recording, size, frames)``
(mri2audio), see :mod:`articulate.phantom.groundtruth`; realism measures in :mod:`.realism`.
"""

from articulate.phantom.cohort import (
           KINDS,
           VERSIONS,
           check_options,
           ensure_phantom,
           generate,
           load_subject,
           phantom_key,
)
from articulate.phantom.groundtruth import KEYPOINTS, motion_region, tongue_keypoints

__all__ = ["KEYPOINTS", "KINDS", "VERSIONS", "check_options", "ensure_phantom", "generate", "load_subject",
           "motion_region", "phantom_key", "tongue_keypoints"]
