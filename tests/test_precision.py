"""DistillConfig.precision: bfloat16 forward passes for the networks, float32 for everything learned."""

from __future__ import annotations

import json

import pytest
import torch

from core_fixtures import expert_buffer, separable_dataset, tiny_config
from haba_core import ConfigError, distill
from haba_core.adversary import Adversary
from haba_core.distillation.checkpoint import check_compatible
from haba_core.distillation.precision import forward_precision
from haba_core.networks import get_network


def _config(objective: str, tmp_path, **overrides):
    cfg = tiny_config(**{"objective": objective, "iterations": 3, **overrides})
    if objective == "mtt":
        expert_buffer(tmp_path / "buf")
        cfg.mtt.syn_steps, cfg.mtt.expert_epochs, cfg.mtt.buffer = 2, 1, str(tmp_path / "buf")
    return cfg


def test_forward_precision_casts_convolutions_only_under_bf16():
    net = get_network("ConvNet", 1, 4, 8, width=4, depth=2)
    x = torch.rand(2, 1, 8, 8)
    cpu = torch.device("cpu")
    with forward_precision("fp32", cpu):
        assert net(x).dtype == torch.float32
    with forward_precision("bf16", cpu):
        assert torch.nn.functional.conv2d(x, torch.rand(3, 1, 3, 3)).dtype == torch.bfloat16
    assert net(x).dtype == torch.float32  # nothing leaks out of the context
    with pytest.raises(ValueError, match="precision"):
        forward_precision("fp16", cpu)


def test_adversary_features_and_loss_are_float32_under_bf16():
    net = get_network("ConvNet", 1, 4, 8, width=4, depth=2)
    adv = Adversary(net, forward_context=lambda: forward_precision("bf16", torch.device("cpu")))
    x, labels, groups = torch.rand(4, 1, 8, 8), torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1])
    assert adv.features(x).dtype == torch.float32
    before = [p.detach().clone() for p in net.parameters()]
    loss = adv.step(x, labels, groups)
    assert torch.isfinite(torch.tensor(loss))
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, net.parameters()))


@pytest.mark.parametrize("objective", ["dm", "dc", "mtt"])
def test_bf16_distillation_is_deterministic_close_to_fp32_and_keeps_float32_parameters(objective, tmp_path):
    data = separable_dataset()
    fp32 = distill(data, _config(objective, tmp_path))
    bf16 = distill(data, _config(objective, tmp_path, precision="bf16"))
    again = distill(data, _config(objective, tmp_path, precision="bf16"))
    for p in bf16.synthetic.parameters():
        assert p.dtype == torch.float32 and torch.isfinite(p).all()
    assert torch.equal(bf16.synthetic.bases, again.synthetic.bases)  # same seed, same device: same result
    assert not torch.equal(bf16.synthetic.bases, fp32.synthetic.bases)  # the forward passes really ran in bf16
    start = distill(data, _config(objective, tmp_path, iterations=0)).synthetic.bases
    moved = (fp32.synthetic.bases - start).norm()
    assert moved > 0
    # bf16 changes how the bases move by a small fraction of how far they move in 3 iterations
    assert (bf16.synthetic.bases - fp32.synthetic.bases).norm() < 0.5 * moved
    assert bf16.meta["config"]["precision"] == "bf16"
    if objective == "mtt":
        assert bf16.learned_lr == pytest.approx(fp32.learned_lr, rel=0.05)


def test_precision_is_validated_and_part_of_resume_compatibility():
    with pytest.raises(ConfigError, match="precision"):
        tiny_config(precision="fp16").validate()
    current = tiny_config().to_dict()
    check_compatible({k: v for k, v in current.items() if k != "precision"}, current)  # older checkpoint = fp32
    with pytest.raises(ConfigError, match="precision"):
        check_compatible(current, {**current, "precision": "bf16"})


def test_haba_distill_precision_flag(tmp_path):
    from cli_helpers import TINY, assert_clean_error, run_main
    from haba_cl.distill_cli import main

    out = tmp_path / "o"
    ran = run_main(main, [*TINY, "--precision", "bf16", "--eval-runs", "0", "--no-compare", "--out", str(out)])
    assert ran.code == 0, ran.err
    assert json.loads((out / "meta.json").read_text())["config"]["precision"] == "bf16"
    assert_clean_error(run_main(main, [*TINY, "--precision", "fp16", "--out", str(tmp_path / "bad")]), "precision")
    assert_clean_error(run_main(main, [*TINY, "--set", "precision=fp16", "--out", str(tmp_path / "bad")]), "precision")
    assert not (tmp_path / "bad").exists()
