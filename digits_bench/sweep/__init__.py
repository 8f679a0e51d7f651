"""Optuna sweeps over any config key, driven directly (see sweeps/)."""
