"""The factorized replay memory: budget, class balance, rebalancing, sampling, save/load (no training)."""

from __future__ import annotations

import json

import pytest
import torch

from haba_core import BudgetError, FactorizedDataset, FormatError, HallucinatorConfig, Preprocessor, SyntheticSet
from strategies.memory import FactorizedMemory

SHAPE = (1, 8, 8)


def fake_part(n_classes: int, bpc: int, n_h: int, shape=SHAPE, basis_shape=None, seed: int = 0,
              hall: HallucinatorConfig | None = None) -> FactorizedDataset:
    """A distilled-looking experience (local labels 0..n_classes-1), built without distillation."""
    g = torch.Generator().manual_seed(seed)
    basis_shape = basis_shape or shape
    bases = torch.randn((n_classes * bpc, *basis_shape), generator=g)
    labels = torch.arange(n_classes).repeat_interleave(bpc)
    synth = SyntheticSet(bases, labels, shape, n_classes, n_h, hall or HallucinatorConfig(), generator=g)
    pre = Preprocessor((0.0,) * shape[0], (1.0,) * shape[0])
    return FactorizedDataset(synth, pre, [str(i) for i in range(n_classes)])


def add_experience(mem: FactorizedMemory, classes, seed=0, real=None):
    plan = mem.plan({c: (real or {}).get(c, 100) for c in classes})
    part = fake_part(len(classes), plan.bpc, plan.new_hallucinators, mem.image_shape,
                     basis_shape=mem.basis_shape, seed=seed, hall=mem.hallucinator_config)
    mem.add(part, classes, experience=seed, plan=plan)
    return plan


@pytest.mark.parametrize("mem_size,classes_per_exp,n_exp,share", [
    (40, 2, 4, 0.2), (24, 2, 3, 0.5), (100, 5, 4, 0.2), (30, 1, 6, 0.0), (64, 4, 2, 1.0)])
def test_never_exceeds_budget_and_stays_balanced(mem_size, classes_per_exp, n_exp, share):
    mem = FactorizedMemory(mem_size, SHAPE, hallucinators=3, hallucinator_share=share)
    assert mem.budget_bytes == mem_size * 64 * 4
    planned = mem.check_stream([list(range(e * classes_per_exp, (e + 1) * classes_per_exp)) for e in range(n_exp)])
    for e in range(n_exp):
        classes = list(range(e * classes_per_exp, (e + 1) * classes_per_exp))
        plan = add_experience(mem, classes, seed=e)
        assert plan == planned[e]
        report = mem.storage()
        assert report.bytes <= mem.budget_bytes
        assert report.parameters == plan.storage_numbers
        per_class = mem.bases_per_class()
        assert sorted(per_class) == list(range((e + 1) * classes_per_exp))  # old classes still present
        assert len(set(per_class.values())) == 1 and min(per_class.values()) >= 1  # class-balanced
        assert all(p.num_hallucinators >= 1 for p in mem.parts)


def test_rebalancing_keeps_the_first_bases_and_hallucinators():
    mem = FactorizedMemory(40, SHAPE, hallucinators=4, hallucinator_share=0.25)
    add_experience(mem, [0, 1], seed=1)
    first = mem.parts[0].data
    bases0 = first.synthetic.bases.detach().clone()
    labels0 = first.synthetic.labels.clone()
    sigma0 = first.synthetic.hallucinators.sigma.detach().clone()
    n_h0, bpc0 = first.num_hallucinators, mem.bases_per_class()[0]
    plan = add_experience(mem, [2, 3], seed=2)
    assert plan.bpc < bpc0 and plan.hallucinators[0] < n_h0
    after = mem.parts[0].data.synthetic
    for c in (0, 1):
        expected = bases0[labels0 == c][: plan.bpc]
        assert torch.equal(after.bases[after.labels == c], expected)
    assert torch.equal(after.hallucinators.sigma, sigma0[: plan.hallucinators[0]])
    assert after.num_hallucinators == plan.hallucinators[0] >= 1


def test_labels_are_global_class_ids():
    mem = FactorizedMemory(60, SHAPE, hallucinators=2)
    add_experience(mem, [7, 3], seed=0)  # local label 0 → class 7, 1 → class 3
    add_experience(mem, [1, 9], seed=1)
    assert mem.seen_classes == [1, 3, 7, 9] and mem.num_classes == 10
    assert all(p.data.num_classes == 10 for p in mem.parts)
    assert set(mem.parts[0].data.synthetic.labels.tolist()) == {3, 7}


def test_memory_too_small_raises_budget_error():
    mem = FactorizedMemory(3, SHAPE, hallucinators=2)
    with pytest.raises(BudgetError, match="too small for one basis per class"):
        mem.plan([0, 1])
    plain = FactorizedMemory(3, SHAPE, parameterization="plain")
    plain.check_stream([[0], [1], [2]])
    with pytest.raises(BudgetError, match="mem_size >= 4"):
        plain.check_stream([[0, 1], [2, 3]])


def test_class_with_fewer_real_images_than_bases():
    mem = FactorizedMemory(64, SHAPE, hallucinators=1)
    plan = add_experience(mem, [0, 1], real={0: 2, 1: 500})
    assert plan.new_bases == {0: 2, 1: plan.bpc} and plan.bpc > 2
    assert mem.bases_per_class() == {0: 2, 1: plan.bpc}
    assert any("only 2 real images" in n for n in plan.notes)
    add_experience(mem, [2, 3], seed=1)
    assert mem.storage().bytes <= mem.budget_bytes
    assert mem.bases_per_class()[0] == min(2, mem.bases_per_class()[2])


def test_plain_memory_equals_a_class_balanced_image_buffer():
    mem = FactorizedMemory(20, SHAPE, parameterization="plain")
    add_experience(mem, [0, 1])
    assert mem.bases_per_class() == {0: 10, 1: 10} and mem.storage().bytes == mem.budget_bytes
    add_experience(mem, [2, 3], seed=1)
    assert mem.bases_per_class() == {0: 5, 1: 5, 2: 5, 3: 5}
    assert all(p.num_hallucinators == 0 for p in mem.parts)


def test_smaller_bases_fit_more():
    full = FactorizedMemory(30, (3, 8, 8), hallucinators=2)
    small = FactorizedMemory(30, (3, 8, 8), hallucinators=2, basis_channels=1)
    assert small.basis_shape == (1, 8, 8)
    assert small.plan([0, 1, 2]).bpc > full.plan([0, 1, 2]).bpc
    add_experience(small, [0, 1, 2])
    add_experience(small, [3, 4, 5], seed=1)
    assert small.storage().bytes <= small.budget_bytes


def test_sample_shapes_labels_and_task_labels():
    mem = FactorizedMemory(40, SHAPE, hallucinators=2)
    add_experience(mem, [0, 1], seed=0)
    plan = mem.plan([2, 3])
    mem.add(fake_part(2, plan.bpc, plan.new_hallucinators, seed=1), [2, 3], experience=1, task_label=1, plan=plan)
    x, y, t = mem.sample(64, torch.Generator().manual_seed(0))
    assert x.shape == (64, *SHAPE) and y.shape == (64,) and t.shape == (64,)
    assert not x.requires_grad and x.dtype == torch.float32
    assert set(y.tolist()) <= {0, 1, 2, 3} and len(set(y.tolist())) == 4
    assert torch.equal(t, (y >= 2).long())  # task label of the part the sample came from
    again = mem.sample(64, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], x)


def test_save_load_round_trip(tmp_path):
    mem = FactorizedMemory(40, SHAPE, hallucinators=3)
    add_experience(mem, [4, 2], seed=0)
    add_experience(mem, [0, 5], seed=1)
    mem.save(tmp_path / "m", extra={"note": "test"})
    meta = json.loads((tmp_path / "m" / "memory.json").read_text())
    assert meta["format"] == "haba-cl-memory" and meta["storage"]["bytes"] <= meta["budget_bytes"]
    assert (tmp_path / "m" / "part-000" / "factorized.safetensors").is_file()
    back = FactorizedMemory.load(tmp_path / "m")
    assert back.seen_classes == mem.seen_classes and back.bases_per_class() == mem.bases_per_class()
    for a, b in zip(mem.parts, back.parts):
        assert a.experience == b.experience and a.classes == b.classes
        for k, v in a.data.tensors().items():
            assert torch.equal(v, b.data.tensors()[k]), k
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(mem.sample(16, g1)[0], back.sample(16, g2)[0])
    # the loaded memory keeps rebalancing correctly
    add_experience(back, [1, 3], seed=2)
    assert back.storage().bytes <= back.budget_bytes


def test_load_rejects_broken_memory(tmp_path):
    with pytest.raises(FormatError):
        FactorizedMemory.load(tmp_path)
    (tmp_path / "memory.json").write_text("{not json")
    with pytest.raises(FormatError):
        FactorizedMemory.load(tmp_path)
    mem = FactorizedMemory(40, SHAPE, hallucinators=2)
    add_experience(mem, [0, 1])
    mem.save(tmp_path / "ok")
    meta = json.loads((tmp_path / "ok" / "memory.json").read_text())
    meta["mem_size"] = 2  # claims a smaller budget than it holds
    (tmp_path / "ok" / "memory.json").write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="exceeds"):
        FactorizedMemory.load(tmp_path / "ok")


def test_global_rng_untouched_by_rebalancing():
    mem = FactorizedMemory(40, SHAPE, hallucinators=3)
    add_experience(mem, [0, 1])
    state = torch.random.get_rng_state()
    add_experience(mem, [2, 3], seed=1)
    assert torch.equal(state, torch.random.get_rng_state())
