"""The two ways predicting can fail: the model cannot be had (exit 2), or one image cannot be read (exit 1)."""


class ModelLoadError(RuntimeError):
    """The run, experiment, checkpoint or config does not give a model; the message says which and why."""


class ImageError(ValueError):
    """One input file cannot be read as digits; the others still are. The message says why, in a few words."""
