"""On-disk cache of frozen-encoder outputs (computed once per dataset, then trained from)."""

from articulate.features.cache import FeatureCache, array_content_key, file_content_key, text_content_key

__all__ = ["FeatureCache", "array_content_key", "file_content_key", "text_content_key"]
