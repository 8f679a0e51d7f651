"""Every seed architecture builds from its config with the seed's exact trainable parameter count."""
from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from digits_bench.models import count_parameters, create_model, list_models, model_entry

from .conftest import compose, run_cli

# Counted by hand from each seed's layer list, with its framework's defaults
# (Keras and MXNet convolutions unpadded; Keras BatchNorm's moving stats not trainable).
SEED_PARAMS = {
    "linear": 784 * 10 + 10,
    "mlp_128_64": (784 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10),
    "lenet": (20 * 25 + 20) + (50 * 20 * 25 + 50) + (800 * 500 + 500) + (500 * 10 + 10),
    "cnn_bn": (5 * 9 + 5) + (10 * 5 * 9 + 10) + 2 * 10 + (20 * 10 * 9 + 20) + 2 * 20 + (40 * 20 * 9 + 40) + 2 * 40
    + (1960 * 200 + 200) + (200 * 500 + 500) + (500 * 10 + 10),
    "mlp_512": (784 * 512 + 512) + (512 * 512 + 512) + (512 * 10 + 10),
    "cnn_tf": (32 * 25 + 32) + (64 * 32 * 25 + 64) + (1024 * 1024 + 1024) + (1024 * 10 + 10),
    "mlp_500_300": (784 * 500 + 500) + (500 * 300 + 300) + (300 * 10 + 10),
    "vgg": (32 * 9 + 32) + (32 * 32 * 9 + 32) + (64 * 32 * 9 + 64) + (64 * 64 * 9 + 64) + (1024 * 512 + 512) + (512 * 10 + 10),
}
SEED_PARAMS["vgg_dropout"] = SEED_PARAMS["vgg"]
SEED_PARAMS["vgg_bn"] = SEED_PARAMS["vgg"] + 2 * (32 + 32 + 64 + 64 + 512)
# The harness's own recipes (speedrun, best): bias-free convolutions, each followed by batch norm.
HARNESS_PARAMS = {
    "speedrun": (16 * 9 + 2 * 16) + (32 * 16 * 9 + 2 * 32) + (64 * 32 * 9 + 2 * 64) + (64 * 9 * 10 + 10),
    "cnn_best": sum(c_out * (c_in * 9 + 2) for c_in, c_out in [(1, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128)])
    + (128 * 256 + 256) + (256 * 10 + 10),
}


def test_registry_holds_every_seed_model_and_the_harness_recipes():
    assert sorted(SEED_PARAMS | HARNESS_PARAMS) == list_models()
    assert {model_entry(name).seed for name in HARNESS_PARAMS} == {"harness"}


@pytest.mark.parametrize("name", sorted(HARNESS_PARAMS))
def test_harness_models_build_from_config(name: str):
    net = instantiate(compose(f"model={name}").model)
    assert count_parameters(net) == HARNESS_PARAMS[name]
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("name", sorted(SEED_PARAMS))
def test_model_from_config_matches_seed(name: str):
    cfg = compose(f"model={name}")
    net = instantiate(cfg.model)
    assert count_parameters(net) == SEED_PARAMS[name]
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_seed_slips_are_kept():
    cnn_tf = create_model("cnn_tf")
    linear_layers = [i for i, m in enumerate(cnn_tf) if isinstance(m, nn.Linear)]
    # no activation between the 1024-unit layer and the classifier, as in seed 002
    between = list(cnn_tf)[linear_layers[0] + 1 : linear_layers[1]]
    assert not any(isinstance(m, (nn.ReLU, nn.Tanh)) for m in between)
    assert any(isinstance(m, nn.Tanh) for m in create_model("lenet").modules())


def test_init_schemes_differ_and_unknown_fails():
    keras = create_model("mlp_512", init="glorot_uniform")[1]
    assert float(keras.bias.detach().abs().sum()) == 0.0
    mx = create_model("mlp_128_64", init="uniform", init_scale=0.01)[1]
    assert float(mx.weight.detach().abs().max()) <= 0.01
    with pytest.raises(ValueError, match="unknown init"):
        create_model("vgg", init="orthogonal")
    with pytest.raises(ValueError, match="choose one of"):
        create_model("resnet")


@pytest.mark.parametrize("name", list_models())
def test_the_datasets_number_of_classes_reaches_the_model(name: str):
    from digits_bench.training.run import build_module

    module = build_module(compose(f"model={name}", "data.num_classes=12"))
    module.net.eval()
    assert module.net(torch.zeros(2, 1, 28, 28)).shape == (2, 12)


@pytest.mark.fit
def test_models_table_cli():
    result = run_cli([], module="digits_bench.models", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "596,330" in result.stdout and "vgg_bn" in result.stdout and "004" in result.stdout
