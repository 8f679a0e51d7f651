"""Seed architectures and the harness's own recipes, one module per family, all reachable by name through the registry."""
from digits_bench.models import cnn_bn, cnn_tf, fast_cnn, lenet, mlp, vgg  # noqa: F401  (registers the models)
from digits_bench.models.registry import count_parameters, create_model, list_models, model_entry, register_model

__all__ = ["count_parameters", "create_model", "list_models", "model_entry", "register_model"]
