"""Read handwritten digits from photos and scans with a tracked model: `python -m digits_bench.predict`.

Import-light on purpose: torch, Lightning and MLflow load only when a model is loaded.
"""
from digits_bench.errors import ImageError, ModelLoadError

__all__ = ["ImageError", "ModelLoadError"]
