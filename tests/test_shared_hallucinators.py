"""One hallucinator bank for a whole continual stream (``share_hallucinators``): budget, freezing, save/load."""

from __future__ import annotations

import json

import pytest
import torch

from haba_core import BudgetError, ConfigError, DistillConfig, FormatError, ImageDataset, distill
from strategies import HabaReplay, HabaReplayPlugin
from strategies.memory import FactorizedMemory
from strategies.registry import REGISTRY
from test_avalanche_memory import SHAPE, add_experience, fake_part
from test_avalanche_plugin import N_CLASSES, quiet_evaluator, separable, tiny_distill, tiny_model, tiny_stream


def test_shared_bank_is_paid_once_and_leaves_more_bases():
    stream = [[0, 1], [2, 3], [4, 5], [6, 7]]
    own = FactorizedMemory(60, SHAPE, hallucinators=3, hallucinator_share=0.5)
    shared = FactorizedMemory(60, SHAPE, hallucinators=3, hallucinator_share=0.5, share_hallucinators=True)
    own_plans, shared_plans = own.check_stream(stream), shared.check_stream(stream)
    assert own_plans[0] == shared_plans[0]  # the first experience is planned alike
    each = shared.hallucinator_numel
    for e, plan in enumerate(shared_plans):
        assert plan.new_hallucinators == shared_plans[0].new_hallucinators  # the bank never changes
        groups = 2 * (e + 1)
        assert plan.bpc == min((shared.budget_numbers - plan.new_hallucinators * each) // (groups * 64),
                               shared_plans[e - 1].bpc if e else 10 ** 9)
        assert plan.storage_numbers <= plan.budget_numbers
    assert shared_plans[-1].bpc > own_plans[-1].bpc  # the per-experience banks cost bases


def test_shared_memory_is_one_part_within_budget_and_keeps_old_bases():
    mem = FactorizedMemory(60, SHAPE, hallucinators=3, hallucinator_share=0.5, share_hallucinators=True)
    add_experience(mem, [0, 1], seed=0)
    first = mem.parts[0].data.synthetic
    bases0, labels0 = first.bases.detach().clone(), first.labels.clone()
    bank = mem.shared_hallucinators()
    assert bank is not None and all(not v.requires_grad for v in bank.values())
    plan = mem.plan({2: 100, 3: 100})
    part = fake_part(2, plan.bpc, plan.new_hallucinators, SHAPE, seed=5, hall=mem.hallucinator_config)
    with pytest.raises(ConfigError, match="shared hallucinators"):
        mem.add(part, [2, 3], experience=1, plan=plan)  # its own bank: refused, memory unchanged
    assert len(mem.parts) == 1 and mem.seen_classes == [0, 1]
    part.synthetic.hallucinators.load_state_dict(bank)
    mem.add(part, [2, 3], experience=1, plan=plan)
    assert len(mem.parts) == 1 and mem.parts[0].classes == [0, 1, 2, 3] and mem.parts[0].experience == 1
    assert mem.storage().parameters == plan.storage_numbers <= mem.budget_numbers
    assert mem.bases_per_class() == {c: plan.bpc for c in range(4)}
    after = mem.parts[0].data.synthetic
    for c in (0, 1):
        assert torch.equal(after.bases[after.labels == c], bases0[labels0 == c][: plan.bpc])
    for k, v in bank.items():
        assert torch.equal(after.hallucinators.state_dict()[k], v)
    x, y, t = mem.sample(12, torch.Generator().manual_seed(0))
    assert x.shape == (12, *SHAPE) and set(y.tolist()) <= {0, 1, 2, 3} and torch.isfinite(x).all()


def test_shared_memory_rejects_a_second_task_label_and_too_small_budgets():
    mem = FactorizedMemory(60, SHAPE, hallucinators=2, share_hallucinators=True)
    add_experience(mem, [0, 1], seed=0)
    plan = mem.plan([2])
    part = fake_part(1, plan.bpc, plan.new_hallucinators, SHAPE, seed=1)
    part.synthetic.hallucinators.load_state_dict(mem.shared_hallucinators())
    with pytest.raises(ConfigError, match="one task label"):
        mem.add(part, [2], experience=1, task_label=1, plan=plan)
    tiny = FactorizedMemory(3, SHAPE, hallucinators=1, share_hallucinators=True)
    with pytest.raises(BudgetError, match="shared by all experiences"):
        tiny.check_stream([[0, 1], [2, 3], [4, 5]])


def test_shared_memory_save_load_round_trip(tmp_path):
    mem = FactorizedMemory(60, SHAPE, hallucinators=2, share_hallucinators=True)
    add_experience(mem, [0, 1], seed=0)
    plan = mem.plan([2, 3])
    part = fake_part(2, plan.bpc, plan.new_hallucinators, SHAPE, seed=1)
    part.synthetic.hallucinators.load_state_dict(mem.shared_hallucinators())
    mem.add(part, [2, 3], experience=1, plan=plan)
    mem.save(tmp_path / "m")
    back = FactorizedMemory.load(tmp_path / "m")
    assert back.share_hallucinators and len(back.parts) == 1
    for k, v in mem.parts[0].data.tensors().items():
        assert torch.equal(back.parts[0].data.tensors()[k], v)
    meta = json.loads((tmp_path / "m" / "memory.json").read_text())
    meta["share_hallucinators"] = "yes"
    (tmp_path / "m" / "memory.json").write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="share_hallucinators"):
        FactorizedMemory.load(tmp_path / "m")
    meta["share_hallucinators"] = True
    meta["parts"] = meta["parts"] * 2
    (tmp_path / "m" / "memory.json").write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="one part"):
        FactorizedMemory.load(tmp_path / "m")


def test_distill_starts_from_a_given_bank_and_keeps_it_frozen_at_lr_zero():
    x, y = separable(6, 0)
    data = ImageDataset(name="t", images=x, labels=y, classes=[str(c) for c in range(N_CLASSES)],
                        mean=(0.0,), std=(1.0,), split="train")
    first = distill(data, tiny_distill())
    bank = {k: v.detach().clone() for k, v in first.synthetic.hallucinators.state_dict().items()}
    for optimizer in ("sgd", "adam"):
        frozen = tiny_distill(lr_hallucinators=0.0, lr_affine=0.0, seed=3, hallucinator_optimizer=optimizer)
        second = distill(data, frozen, hallucinator_init=bank)
        for k, v in second.synthetic.hallucinators.state_dict().items():
            assert torch.equal(v, bank[k]), optimizer
    moved = distill(data, tiny_distill(seed=3, lr_hallucinators=0.1), hallucinator_init=bank)
    assert any(not torch.equal(v, bank[k]) for k, v in moved.synthetic.hallucinators.state_dict().items())
    wrong = dict(bank)
    name = next(iter(wrong))
    wrong[name] = torch.zeros(7)
    with pytest.raises(ConfigError, match="hallucinator_init"):
        distill(data, frozen, hallucinator_init=wrong)
    wrong[name] = torch.full_like(bank[name], float("nan"))
    with pytest.raises(ConfigError, match="NaN"):
        distill(data, frozen, hallucinator_init=wrong)
    with pytest.raises(ConfigError, match="factorized"):
        distill(data, tiny_distill(parameterization="plain"), hallucinator_init=bank)


def test_haba_replay_with_shared_hallucinators_trains_a_stream(tmp_path):
    bench = tiny_stream()
    model = tiny_model()
    strat = HabaReplay(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                       criterion=torch.nn.CrossEntropyLoss(), mem_size=16, batch_size_mem=5,
                       distill_config=tiny_distill(), share_hallucinators=True, train_mb_size=16, train_epochs=1,
                       eval_mb_size=64, evaluator=quiet_evaluator())
    banks = []
    for exp in bench.train_stream:
        strat.train(exp)
        banks.append(strat.haba_plugin.memory.shared_hallucinators())
    mem = strat.haba_plugin.memory
    assert len(mem.parts) == 1 and sorted(mem.bases_per_class()) == [0, 1, 2, 3]
    assert mem.storage().bytes <= mem.budget_bytes
    for k, v in banks[0].items():  # learned on the first experience, frozen afterwards
        assert torch.equal(banks[1][k], v)
    strat.haba_plugin.save_memory(tmp_path / "mem")
    other = HabaReplayPlugin(16, distill_config=tiny_distill(), share_hallucinators=True)
    assert other.load_memory(tmp_path / "mem").share_hallucinators
    with pytest.raises(ConfigError, match="share_hallucinators"):
        HabaReplayPlugin(16, distill_config=tiny_distill()).load_memory(tmp_path / "mem")
    with pytest.raises(ConfigError, match="share_hallucinators"):
        HabaReplayPlugin(16, distill_config=tiny_distill(), share_hallucinators="yes")


def test_registry_names_the_shared_strategy():
    assert REGISTRY["haba-shared"].share_hallucinators and REGISTRY["haba-shared"].distilled
    assert not REGISTRY["haba"].share_hallucinators
    assert isinstance(DistillConfig().hallucinators, int)
