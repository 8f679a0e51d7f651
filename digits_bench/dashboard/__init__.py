"""optuna-dashboard on the sweeps' studies in the local store (`<store>/optuna.db`), on this machine only."""
