"""Issue 17 items 1-5: compute budget + progress, Avalanche-style arguments, early BudgetError, plans from the
data present, exact input normalisation, and the memory as an Avalanche storage policy."""

from __future__ import annotations

import torch
import pytest
from avalanche.logging import BaseLogger
from avalanche.training import Naive
from avalanche.training.plugins import ReplayPlugin

from haba_core import BudgetError, ConfigError
from haba_core.loss_terms import active_loss_terms
from strategies import (CPU_BUDGET, GPU_BUDGET, ComputeBudget, HabaBuffer, HabaReplayPlugin,
                        default_cl_config, resolve_budget)
from test_avalanche_plugin import (N_CLASSES, SIZE, make_haba, quiet_evaluator, tiny_distill, tiny_model,
                                         tiny_stream)


class MetricSink(BaseLogger):
    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def log_single_metric(self, name, value, x_plot):
        self.names.append(name)


def test_compute_budget_resolves_by_device_and_caps_iterations():
    assert resolve_budget("auto", "cuda") == GPU_BUDGET and resolve_budget("auto", "cpu") == CPU_BUDGET
    assert CPU_BUDGET.iterations is not None and CPU_BUDGET.seconds is not None
    assert ComputeBudget(iterations=4).apply(1000, None) == (4, None)
    assert ComputeBudget(seconds=9.0).apply(10, 20.0) == (10, 9.0)
    assert resolve_budget(None, "cpu").apply(7, None) == (7, None)
    with pytest.raises(ConfigError):
        ComputeBudget(iterations=0)
    with pytest.raises(ConfigError):
        HabaReplayPlugin(10, compute_budget="fast")


def test_budget_caps_each_update_and_loggers_see_it(capsys):
    sink = MetricSink()
    strat = make_haba(epochs=1, compute_budget=ComputeBudget(iterations=2), progress=True, verbose=True)
    strat.evaluator.loggers.append(sink)
    strat.train(tiny_stream().train_stream[0], num_workers=0)
    entry = strat.haba_plugin.history[-1]
    assert entry["distill_iterations"] == 2 and any("compute budget" in n for n in entry["notes"])
    assert set(entry["final_losses"]) == {"dd", "adv"}  # one hallucinator here: no diversity (cos) term
    assert any(n.startswith("MemoryUpdate/iterations/Exp000") for n in sink.names)
    err = capsys.readouterr()
    assert "memory update, experience 0" in err.err and "[haba-replay] experience 0" in err.out


def test_progress_shows_only_the_terms_a_recipe_computes():
    assert active_loss_terms(default_cl_config("modest")) == ("dd",)
    assert active_loss_terms(default_cl_config("paper")) == ("dd", "cos", "adv")
    assert active_loss_terms(default_cl_config("paper", parameterization="plain")) == ("dd",)


def test_keyword_only_like_avalanche():
    with pytest.raises(TypeError):
        HabaReplayPlugin(200, 32)  # ReplayPlugin(200, 32) sets batch_size: never silently batch_size_mem
    assert HabaReplayPlugin(200, batch_size_mem=32).batch_size_mem == 32
    strat = make_haba(verbose=True)
    assert strat.haba_plugin.verbose is True


def test_budget_error_before_experience_0_trains():
    trained = []
    strat = make_haba(mem_size=1)  # 2 classes per experience cannot get one basis each
    strat.evaluator.loggers.clear()
    original = strat.training_epoch
    strat.training_epoch = lambda **kw: (trained.append(1), original(**kw))
    with pytest.raises(BudgetError):
        strat.train(tiny_stream().train_stream[0], num_workers=0)
    assert trained == []


def test_bases_planned_from_the_images_present():
    plugin = HabaReplayPlugin(100, distill_config=tiny_distill(), compute_budget=None)
    x = torch.randn(6, 1, SIZE, SIZE)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    entry = plugin.add_experience(x, y, experience=0)
    assert entry["planned_bpc"] > 3 and entry["bpc"] == 3
    assert entry["bases_per_class"] == {"0": 3, "1": 3}
    assert plugin.memory.parts[0].data.meta["budget"]["bpc"] == 3  # only 3 per class were distilled


def test_input_normalization_does_not_change_composed_samples():
    x = torch.randn(16, 1, SIZE, SIZE)
    y = torch.arange(16) % 2
    samples = []
    for norm in (None, ((0.3,), (0.4,))):
        p = HabaReplayPlugin(20, distill_config=tiny_distill(), input_normalization=norm, seed=3)
        p.add_experience(x, y, experience=0)
        samples.append(p.memory.sample(12, torch.Generator().manual_seed(0))[0])
    assert torch.equal(samples[0], samples[1])


def test_haba_buffer_as_avalanche_storage_policy():
    storage = HabaBuffer(16, distill_config=tiny_distill(), compute_budget=None)
    model = tiny_model()
    strat = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
                  criterion=torch.nn.CrossEntropyLoss(), train_mb_size=16, train_epochs=1, eval_mb_size=64,
                  plugins=[ReplayPlugin(16, batch_size_mem=4, storage_policy=storage)], evaluator=quiet_evaluator())
    for exp in tiny_stream().train_stream:
        strat.train(exp, num_workers=0)
    buf = storage.buffer
    mem = storage.memory
    assert len(buf) == sum(len(p.data) * p.num_hallucinators for p in mem.parts)
    assert mem.storage().parameters <= 16 * SIZE * SIZE
    x, y, t = buf[0]
    assert tuple(x.shape) == (1, SIZE, SIZE) and 0 <= int(y) < N_CLASSES and int(t) == 0
    assert sorted(set(int(v) for v in buf.targets)) == list(range(N_CLASSES))
