"""MTT's learnable lr α: stepped directly (SGD, momentum 0.5, floor), moves, resumes (issue 15)."""

import pytest
import torch

from haba_core import FormatError, distill
from haba_core.distillation.checkpoint import load_checkpoint, save_checkpoint

from core_fixtures import expert_buffer, separable_dataset, tiny_config


@pytest.fixture(scope="module")
def buffer(tmp_path_factory):
    out = tmp_path_factory.mktemp("mtt-buffer")
    expert_buffer(out)
    return out


def mtt_config(buffer, **overrides):
    cfg = tiny_config(objective="mtt", parameterization="plain", dsa=False, **overrides)
    cfg.mtt.syn_steps, cfg.mtt.expert_epochs, cfg.mtt.max_start_epoch, cfg.mtt.buffer = 2, 1, 2, str(buffer)
    return cfg


def test_learned_lr_moves_within_20_iterations(buffer):
    # before issue 15, α was stored as exp(log α) and moved by < 0.1 % in 60 iterations
    result = distill(separable_dataset(), mtt_config(buffer, iterations=20))
    assert abs(result.learned_lr - 0.01) / 0.01 > 0.05


def test_learned_lr_is_clamped_at_its_floor(buffer):
    cfg = mtt_config(buffer, iterations=3)
    cfg.mtt.lr_lr, cfg.mtt.lr_min = 1e6, 1e-3  # a huge step would push α below zero
    result = distill(separable_dataset(), cfg)
    assert result.learned_lr >= 1e-3


def test_resume_keeps_the_learned_lr_and_refuses_old_log_lr_checkpoints(buffer, tmp_path):
    data = separable_dataset()
    straight = distill(data, mtt_config(buffer, iterations=4))
    cfg = mtt_config(buffer, iterations=2, checkpoint_dir=str(tmp_path / "ck"))
    distill(data, cfg)
    cfg.iterations = 4
    resumed = distill(data, cfg, resume=True)
    assert resumed.learned_lr == straight.learned_lr
    state = load_checkpoint(tmp_path / "ck")
    state["objective"] = {"log_lr": torch.tensor(-4.6)}  # the format written before the fix
    save_checkpoint(tmp_path / "ck", state)
    with pytest.raises(FormatError, match="log α"):
        distill(data, cfg, resume=True)
