"""HabaReplayPlugin / HabaReplay inside real Avalanche 0.6 training loops on tiny tensor streams."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset as tensor_dataset
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from avalanche.training.templates import SupervisedTemplate

from haba_core import ConfigError, DistillConfig, get_network
from strategies import HabaReplay, HabaReplayPlugin

N_CLASSES, SIZE = 4, 8


def separable(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c = a bright horizontal band at rows 2c..2c+1 plus noise, normalised."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for c in range(N_CLASSES):
        base = torch.zeros(1, SIZE, SIZE)
        base[:, 2 * c:2 * c + 2, :] = 0.9
        xs.append((base + 0.15 * torch.rand((per_class, 1, SIZE, SIZE), generator=g)).clamp(0, 1))
        ys.append(torch.full((per_class,), c, dtype=torch.long))
    x = torch.cat(xs)
    return (x - 0.3) / 0.4, torch.cat(ys)


def tiny_stream(per_class: int = 24):
    (xtr, ytr), (xte, yte) = separable(per_class, 0), separable(10, 1)
    return nc_benchmark(tensor_dataset(xtr, ytr), tensor_dataset(xte, yte), 2, task_labels=False,
                        fixed_class_order=[0, 1, 2, 3])


def tiny_distill(**kw) -> DistillConfig:
    cfg = DistillConfig(objective="dm", parameterization="haba", ipc=None, bpc=1, hallucinators=2, iterations=3,
                        net_width=8, net_depth=2, device="cpu", seed=0, checkpoint_every=1000)
    for k, v in kw.items():
        setattr(cfg, k, v)
    cfg.dm.batch_real = 8
    return cfg


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_network("ConvNet", 1, N_CLASSES, SIZE, width=16, depth=2)


def quiet_evaluator():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EvaluationPlugin(accuracy_metrics(stream=True, experience=True),
                                forgetting_metrics(experience=True, stream=True), loggers=[])


class Recorder(SupervisedPlugin):
    """Records every training minibatch after the forward pass, and the state at after_training_exp."""

    def __init__(self):
        super().__init__()
        self.batches: list[tuple[int, torch.Size, torch.Tensor, torch.Tensor]] = []
        self.snapshots: list[dict] = []

    def after_forward(self, strategy, **kw):
        self.batches.append((strategy.clock.train_exp_counter, strategy.mb_x.shape, strategy.mb_y.clone(),
                             strategy.mb_task_id.clone()))
        assert strategy.mb_output.shape[0] == strategy.mb_x.shape[0]

    def after_training_exp(self, strategy, **kw):
        self.snapshots.append({"opt": copy.deepcopy(strategy.optimizer.state_dict()),
                               "model": copy.deepcopy(strategy.model.state_dict()),
                               "rng": torch.random.get_rng_state().clone(),
                               "training": strategy.model.training})


def make_haba(mem_size=16, batch_size_mem=5, plugins=None, epochs=2, lr=0.05, **kw):
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return HabaReplay(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(), mem_size=mem_size,
                      batch_size_mem=batch_size_mem, distill_config=tiny_distill(), train_mb_size=16,
                      train_epochs=epochs, eval_mb_size=64, plugins=plugins, evaluator=quiet_evaluator(), **kw)


def test_replayed_minibatches_shape_labels_tasks_and_budget():
    bench = tiny_stream()
    rec = Recorder()
    strat = make_haba(plugins=[rec])
    budget = 16 * SIZE * SIZE * 4
    for i, exp in enumerate(bench.train_stream):
        strat.train(exp)
        mem = strat.haba_plugin.memory
        assert mem.storage().bytes <= budget == mem.budget_bytes
        per_class = mem.bases_per_class()
        assert sorted(per_class) == list(range(2 * (i + 1))) and len(set(per_class.values())) == 1
    first = [b for b in rec.batches if b[0] == 0]
    second = [b for b in rec.batches if b[0] == 1]
    assert all(tuple(shape[1:]) == (1, SIZE, SIZE) for _, shape, _, _ in rec.batches)
    assert all(y.numel() == shape[0] for _, shape, y, _ in first)  # no memory yet in experience 0
    assert all(set(y.tolist()) <= {0, 1} for _, _, y, _ in first)
    for _, shape, y, t in second:
        n_data = shape[0] - 5
        assert n_data >= 1 and set(y[:n_data].tolist()) <= {2, 3}
        assert set(y[n_data:].tolist()) <= {0, 1}  # 5 composed samples of the old classes
        assert t.shape == y.shape and (t == 0).all()
    assert strat.haba_plugin.history[-1]["stored_bytes"] <= budget


def test_plugin_with_any_template_leaves_optimizer_model_and_rng_alone():
    bench = tiny_stream()
    before, after = Recorder(), Recorder()
    plugin = HabaReplayPlugin(mem_size=16, batch_size_mem=4, distill_config=tiny_distill())
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    strat = SupervisedTemplate(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(), train_mb_size=16,
                               train_epochs=1, plugins=[before, plugin, after], evaluator=quiet_evaluator())
    for exp in bench.train_stream:
        strat.train(exp)
    assert len(before.snapshots) == len(after.snapshots) == 2
    for b, a in zip(before.snapshots, after.snapshots):
        assert torch.equal(b["rng"], a["rng"])
        assert b["training"] == a["training"]
        for k, v in b["model"].items():
            assert torch.equal(v, a["model"][k]), k
        assert b["opt"]["param_groups"] == a["opt"]["param_groups"]
        for k, st in b["opt"]["state"].items():
            assert torch.equal(st["momentum_buffer"], a["opt"]["state"][k]["momentum_buffer"])
    assert plugin.memory is not None and len(plugin.memory.parts) == 2


def _final_accuracy(strategy, bench) -> float:
    for exp in bench.train_stream:
        strategy.train(exp)
    res = strategy.eval(bench.test_stream)
    return float(res["Top1_Acc_Stream/eval_phase/test_stream/Task000"])


def test_haba_replay_beats_naive_on_a_separable_stream():
    bench = tiny_stream()
    model = tiny_model()
    naive = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                  criterion=torch.nn.CrossEntropyLoss(), train_mb_size=16, train_epochs=4, evaluator=quiet_evaluator())
    acc_naive = _final_accuracy(naive, bench)
    acc_haba = _final_accuracy(make_haba(mem_size=16, batch_size_mem=16, epochs=4), bench)
    assert acc_haba >= acc_naive + 0.15, (acc_haba, acc_naive)
    assert acc_haba >= 0.9


def test_memory_save_load_and_avalanche_checkpoint(tmp_path):
    from avalanche.checkpointing import maybe_load_checkpoint, save_checkpoint

    bench = tiny_stream()
    strat = make_haba()
    strat.train(bench.train_stream[0])
    plugin = strat.haba_plugin
    plugin.save_memory(tmp_path / "mem")
    other = HabaReplayPlugin(mem_size=16, distill_config=tiny_distill())
    other.load_memory(tmp_path / "mem")
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(plugin.memory.sample(8, g1)[0], other.memory.sample(8, g2)[0])
    with pytest.raises(ConfigError):
        HabaReplayPlugin(mem_size=2, distill_config=tiny_distill()).load_memory(tmp_path / "mem")

    # dill 0.4 cannot pickle torch>=2.10 optimizers (a typing_extensions sentinel), whatever the strategy:
    # checkpoint without the optimizer and rebuild it on the restored model (its state_dict travels separately).
    opt_state = copy.deepcopy(strat.optimizer.state_dict())
    save_checkpoint(strat, tmp_path / "ckpt.pkl", exclude=["optimizer"])
    fresh = make_haba()
    fresh, start = maybe_load_checkpoint(fresh, tmp_path / "ckpt.pkl")
    fresh.optimizer = torch.optim.SGD(fresh.model.parameters(), lr=0.05, momentum=0.9)
    fresh.optimizer.load_state_dict(opt_state)
    assert start == 1
    restored = fresh.haba_plugin.memory
    assert restored is not None and restored.bases_per_class() == plugin.memory.bases_per_class()
    for a, b in zip(plugin.memory.parts, restored.parts):
        assert torch.equal(a.data.synthetic.bases, b.data.synthetic.bases)
    fresh.train(bench.train_stream[1])  # training continues with the restored memory
    assert sorted(fresh.haba_plugin.memory.bases_per_class()) == [0, 1, 2, 3]


def test_plain_dm_memory_and_bad_configs():
    bench = tiny_stream()
    strat = make_haba(distill_device="cpu")
    strat.haba_plugin.distill_config.parameterization = "plain"
    strat.haba_plugin.distill_config.hallucinators = 0
    strat.train(bench.train_stream[0])
    mem = strat.haba_plugin.memory
    assert mem.parameterization == "plain" and mem.bases_per_class() == {0: 8, 1: 8}
    assert mem.storage().bytes == mem.budget_bytes
    with pytest.raises(ConfigError, match="ZCA"):
        HabaReplayPlugin(mem_size=10, distill_config=tiny_distill(zca=True))
    with pytest.raises(ConfigError, match="per-class"):
        HabaReplayPlugin(mem_size=10, distill_config=tiny_distill(per_class_hallucinators=True))
    with pytest.raises(ConfigError):
        HabaReplayPlugin(mem_size=0)


def test_default_distillation_is_the_modest_recipe_over_the_paper_cl_setting():
    from haba_core import UnknownNameError
    from strategies import DEFAULT_CL_RECIPE, default_cl_config, paper_cl_config

    assert DEFAULT_CL_RECIPE == "modest"
    paper, default = paper_cl_config(), default_cl_config()
    assert (paper.parameterization, paper.hallucinator_optimizer, paper.lambda_cos) == ("haba", "sgd", 0.1)
    assert (default.parameterization, default.hallucinator_optimizer, default.lr_hallucinators) == \
        ("idc-haba", "adam", 1e-4)
    assert (default.hallucinator.affine_stride, default.lambda_cos, default.lambda_task) == (2, 0.0, 0.0)
    for cfg in (paper, default):  # the continual setting itself is the same under both recipes
        assert (cfg.objective, cfg.bpc, cfg.hallucinators, cfg.iterations, cfg.net_width, cfg.basis_init) == \
            ("dm", 1, 5, 1000, 128, "real")
    mine = default_cl_config(hallucinator={"depth": 2}, iterations=5)
    assert (mine.hallucinator.depth, mine.hallucinator.affine_stride, mine.iterations) == (2, 2, 5)
    assert HabaReplayPlugin(mem_size=10).distill_config.to_dict() == default.to_dict()
    with pytest.raises(UnknownNameError):
        default_cl_config("turbo")


def test_modest_memory_replays_down_sampled_bases_within_budget():
    from strategies import default_cl_config

    bench = tiny_stream()
    cfg = default_cl_config(hallucinators=2, iterations=3, net_width=8, net_depth=2, device="cpu", seed=0,
                            checkpoint_every=1000, dm={"batch_real": 8})
    model = tiny_model()
    strat = HabaReplay(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                       criterion=torch.nn.CrossEntropyLoss(), mem_size=16, batch_size_mem=5, distill_config=cfg,
                       train_mb_size=16, train_epochs=1, eval_mb_size=64, evaluator=quiet_evaluator())
    for exp in bench.train_stream:
        strat.train(exp)
    mem = strat.haba_plugin.memory
    assert mem.parameterization == "idc-haba"
    assert all(part.data.synthetic.bases.shape[-1] == SIZE // 2 for part in mem.parts)  # 2× down-sampled
    assert sorted(mem.bases_per_class()) == [0, 1, 2, 3] and mem.storage().bytes <= mem.budget_bytes
    x, y = mem.sample(6, torch.Generator().manual_seed(0))[:2]
    assert x.shape == (6, 1, SIZE, SIZE) and torch.isfinite(x).all()  # composed at full size


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    bench = tiny_stream()
    strat = make_haba(device="cuda")
    for exp in bench.train_stream:
        strat.train(exp)
    assert strat.haba_plugin.memory.device.type == "cuda"
    x, y, t = strat.haba_plugin.memory.sample(4, torch.Generator().manual_seed(0), device="cuda")
    assert x.is_cuda and y.is_cuda and t.is_cuda
