"""User-facing errors: the CLI prints their message as one line and exits 2. Kept import-light on purpose."""


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and what to do."""


class DataError(RuntimeError):
    """The dataset is missing or corrupt; the message says how to fix it."""


class TrainingDiverged(RuntimeError):
    """The loss went NaN or infinite: the run stops and is recorded as FAILED."""


class TrackingError(RuntimeError):
    """The MLflow store cannot be opened or written; the message says where and what to do."""
