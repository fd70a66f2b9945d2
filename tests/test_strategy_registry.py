"""haba-cl's strategies come from one registry (strategies.registry): names, derived lists, dispatch."""

import pytest
import torch

from haba_core import DistillConfig, UnknownNameError
from strategies.registry import (DISTILLED, IMAGE_BUFFERS, MEMORY_STRATEGIES, REGISTRY, STRATEGIES, StrategySpec,
                                 check_strategies)


def test_names_and_derived_lists_are_those_haba_cl_has():
    # "distilled-plain" was called "dm" (haba-cl still accepts the old name, haba_cl.cl_names)
    assert STRATEGIES == ("haba", "replay", "herding", "distilled-plain", "idc", "haba-shared", "naive", "er", "gdumb", "lwf", "ewc")
    assert MEMORY_STRATEGIES == ("haba", "replay", "herding", "distilled-plain", "idc", "haba-shared", "er", "gdumb")
    assert IMAGE_BUFFERS == ("replay", "herding", "er", "gdumb")
    assert DISTILLED == {"haba": None, "distilled-plain": "plain", "idc": "idc", "haba-shared": None}
    assert check_strategies(" HABA,replay,haba ") == ["haba", "replay"]
    with pytest.raises(UnknownNameError, match="known: haba, replay"):
        check_strategies("icarl")


def test_the_registry_is_importable_without_avalanche():
    import subprocess
    import sys

    code = "import sys, strategies.registry, strategies.split_benchmarks; print('avalanche' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def _build(name):
    from strategies.baselines import build_strategy

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    return build_strategy(name, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                          criterion=torch.nn.CrossEntropyLoss(), mem_size=8, batch_size_mem=None, train_mb_size=4,
                          train_epochs=1, eval_mb_size=4, device="cpu", evaluator=None,
                          distill_config=DistillConfig(iterations=1), compute_budget=None)


def test_every_registered_strategy_builds_the_avalanche_strategy_it_names():
    from avalanche.training import EWC, GDumb, LwF, Naive, Replay

    from strategies import HabaReplay

    expected = {"haba": HabaReplay, "distilled-plain": HabaReplay, "idc": HabaReplay, "haba-shared": HabaReplay,
                "replay": Naive, "herding": Naive,
                "naive": Naive, "er": Replay, "gdumb": GDumb, "lwf": LwF, "ewc": EWC}
    for name in STRATEGIES:
        built = _build(name)
        assert built.name == name and type(built.strategy) is expected[name], name
        assert (built.plugin is not None) == REGISTRY[name].distilled
        assert (built.storage is not None) == REGISTRY[name].image_buffer
    assert _build("distilled-plain").plugin.distill_config.parameterization == "plain"
    assert _build("haba-shared").plugin.share_hallucinators and not _build("haba").plugin.share_hallucinators
    with pytest.raises(UnknownNameError):
        _build("icarl")


def test_a_new_strategy_is_one_registry_line(monkeypatch):
    monkeypatch.setitem(REGISTRY, "finetune", StrategySpec("strategies.baselines:build_naive"))
    built = _build("finetune")
    assert built.name == "finetune" and built.memory_bytes() is None
