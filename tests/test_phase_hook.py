"""The loop's timing/profiling hook (issue 19): named phases per iteration, results unchanged."""

import contextlib

import pytest
import torch

from haba_core import distill
from haba_core.distillation import PHASES, PhaseClock
from haba_core.objectives import DMObjective

from core_fixtures import separable_dataset, tiny_config


def test_hook_sees_every_phase_of_a_haba_iteration_in_order_and_changes_nothing():
    seen: list[str] = []

    @contextlib.contextmanager
    def hook(name):
        seen.append(name)
        yield

    cfg = tiny_config(iterations=2)
    plain_run = distill(separable_dataset(), cfg)
    hooked = distill(separable_dataset(), tiny_config(iterations=2), phase_hook=hook)
    assert seen == list(PHASES) * 2
    assert torch.equal(plain_run.synthetic.bases, hooked.synthetic.bases)
    for a, b in zip(plain_run.synthetic.parameters(), hooked.synthetic.parameters()):
        assert torch.equal(a, b)


def test_phase_clock_sums_time_per_phase_and_skips_phases_that_do_not_run():
    clock = PhaseClock()
    distill(separable_dataset(), tiny_config(parameterization="plain", iterations=2), phase_hook=clock)
    assert set(clock.cpu_s) == {"compose", "objective", "backward", "optimizer", "after_update"}
    assert all(v >= 0 for v in clock.cpu_s.values()) and sum(clock.wall_s.values()) > 0


def test_the_open_phase_is_closed_when_the_iteration_raises(monkeypatch):
    closed = []

    @contextlib.contextmanager
    def hook(name):
        try:
            yield
        finally:
            closed.append(name)

    def boom(*_):
        raise RuntimeError("stop")

    monkeypatch.setattr(DMObjective, "loss", boom)
    with pytest.raises(RuntimeError, match="stop"):
        distill(separable_dataset(), tiny_config(iterations=1), phase_hook=hook)
    assert closed == ["compose", "objective"]
