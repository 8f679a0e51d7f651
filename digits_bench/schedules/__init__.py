"""Learning-rate schedules (conf/schedule): one class per option, one YAML file naming it.

A new schedule is a subclass of `Schedule` in a file of its own here and conf/schedule/<name>.yaml
targeting it with its hyperparameters (their only defaults).
"""
from digits_bench.schedules.base import Schedule

__all__ = ["Schedule"]
