"""Weight initialisation schemes of the seeds' frameworks.

The seeds were trained with their framework's default initialisers; with plain
SGD at a small learning rate (seed 004) the initialiser matters, so each model
can start the way its seed did instead of with PyTorch's default.
"""
from __future__ import annotations

from torch import nn

from digits_bench.config.validation import MODEL_INITS as INITS  # one list: the config check names them too


def initialize(model: nn.Module, scheme: str, scale: float = 0.07) -> nn.Module:
    """Re-initialise conv and linear layers in place.

    torch: keep PyTorch's defaults. glorot_uniform: Keras' default (Glorot-uniform
    weights, zero bias). uniform: MXNet Module's default, U(-scale, scale) weights
    and zero bias.
    """
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; choose one of: {', '.join(INITS)}")
    if scheme == "torch":
        return model
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if scheme == "glorot_uniform":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.uniform_(module.weight, -scale, scale)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
