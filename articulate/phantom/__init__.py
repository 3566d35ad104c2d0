"""Articulatory phantom: synthetic tagged MRI, ultrasound and speech driven by one shared tongue motion.

``generate(kind, out_dir, ...)`` writes a cohort in the real file formats; ``ensure_phantom(kind, ...)``
returns a cached one. See :mod:`articulate.phantom.cohort`.
"""

from articulate.phantom.cohort import KINDS, VERSION, check_options, ensure_phantom, generate, load_subject, phantom_key

__all__ = ["KINDS", "VERSION", "check_options", "ensure_phantom", "generate", "load_subject", "phantom_key"]
