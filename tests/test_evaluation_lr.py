"""haba_core.evaluation_lr: a learned (MTT) lr applies to the network it was learned through; other networks
train at the default unless asked (``learned_lr_on="every-network"``, MTT's code), and ``lr`` always wins."""

from __future__ import annotations

import pytest
import torch

from haba_core import (ConfigError, EvalConfig, FactorizedCollection, FactorizedDataset, HallucinatorConfig,
                       Preprocessor, SyntheticSet, evaluation_lr)
from haba_core.evaluate import DEFAULT_LR


def make(lr=None, network="ConvNet"):
    torch.manual_seed(0)
    synth = SyntheticSet(torch.randn(4, 3, 8, 8), torch.tensor([0, 0, 1, 1]), (3, 8, 8), 2,
                         num_hallucinators=2, hallucinator_config=HallucinatorConfig(depth=2))
    meta = {"dataset": "x", "objective": "mtt", "config": {} if network is None else {"network": network}}
    return FactorizedDataset(synth, Preprocessor((0.5,) * 3, (0.25,) * 3), ["a", "b"], meta, lr)


def test_learned_lr_only_on_its_own_network_by_default():
    data = make(lr=0.04)
    assert data.learned_lr_network == "ConvNet"
    assert evaluation_lr(data, EvalConfig(arch="ConvNet")) == data.learned_lr
    assert evaluation_lr(data, EvalConfig(arch="convnet")) == data.learned_lr  # names are case-insensitive
    for arch in ("VGG11", "AlexNet", "ResNet18", "ConvNetD4"):
        assert evaluation_lr(data, EvalConfig(arch=arch)) == DEFAULT_LR


def test_every_network_and_an_explicit_lr():
    data = make(lr=0.04)
    assert evaluation_lr(data, EvalConfig(arch="VGG11", learned_lr_on="every-network")) == data.learned_lr
    assert evaluation_lr(data, EvalConfig(arch="ConvNet", lr=0.003)) == 0.003
    assert evaluation_lr(make(lr=None), EvalConfig(arch="ConvNet")) == DEFAULT_LR  # nothing learned


def test_a_set_that_does_not_name_its_network_keeps_the_learned_lr_everywhere():
    data = make(lr=0.04, network=None)
    assert data.learned_lr_network is None
    assert evaluation_lr(data, EvalConfig(arch="VGG11")) == data.learned_lr


def test_a_collection_names_its_parts_common_network_or_none():
    same = FactorizedCollection([make(0.04), make(0.02)])
    assert same.learned_lr_network == "ConvNet"
    assert evaluation_lr(same, EvalConfig(arch="AlexNet")) == DEFAULT_LR
    mixed = FactorizedCollection([make(0.04), make(0.02, network="ConvNetD4")])
    assert mixed.learned_lr_network is None
    assert evaluation_lr(mixed, EvalConfig(arch="AlexNet")) == pytest.approx(0.03)


def test_an_unknown_scope_is_a_config_error():
    with pytest.raises(ConfigError, match="learned_lr_on"):
        evaluation_lr(make(lr=0.04), EvalConfig(learned_lr_on="sometimes"))
