import json

import pytest
import torch

from haba_core import (ConfigError, DistillConfig, DistillationInterrupted, EvalConfig, ExpertConfig,
                       FactorizedDataset, NonFiniteLossError, distill, evaluate, train_experts)
from haba_core.distillation import network_factory

from core_fixtures import separable_dataset, tiny_config


@pytest.mark.parametrize("objective", ["dm", "dc", "dsa"])
@pytest.mark.parametrize("param", ["haba", "plain", "idc", "idc-haba"])
def test_every_objective_runs_with_every_parameterization(objective, param):
    cfg = tiny_config(objective=objective, parameterization=param, iterations=2)
    result = distill(separable_dataset(), cfg)
    assert len(result) == result.synthetic.num_bases
    assert result.synthetic.image_shape == (1, 8, 8)
    imgs, labels = result.materialize()
    assert imgs.shape[1:] == (1, 8, 8) and torch.isfinite(imgs).all()
    assert result.storage().parameters > 0


def test_mtt_end_to_end_stores_learned_lr(tmp_path):
    data = separable_dataset()
    cfg = tiny_config(objective="mtt", iterations=2)
    cfg.mtt.syn_steps, cfg.mtt.expert_epochs, cfg.mtt.buffer = 2, 1, str(tmp_path / "buf")
    make = network_factory(cfg, data.image_shape, 4, torch.device("cpu"))
    train_experts((data.images - torch.tensor(data.mean).view(1, -1, 1, 1)) / torch.tensor(data.std).view(1, -1, 1, 1),
                  data.labels, make, tmp_path / "buf", ExpertConfig(num_experts=1, epochs=2, dsa=False), {})
    result = distill(data, cfg)
    assert result.learned_lr is not None and result.learned_lr > 0
    assert result.storage().extra == 1


def test_single_hallucinator_has_no_cos_term():
    result = distill(separable_dataset(), tiny_config(hallucinators=1))
    assert all(h["cos"] == 0.0 for h in result.history)


def test_loss_terms_can_be_switched_off():
    result = distill(separable_dataset(), tiny_config(lambda_cos=0.0, lambda_con=0.0, lambda_task=0.0))
    assert all(h["cos"] == 0.0 and h["adv"] == 0.0 for h in result.history)


def test_same_seed_same_result_and_other_seed_differs():
    data = separable_dataset()
    a = distill(data, tiny_config(seed=3))
    b = distill(data, tiny_config(seed=3))
    c = distill(data, tiny_config(seed=4))
    for k, v in a.tensors().items():
        assert torch.equal(v, b.tensors()[k]), k
    assert not torch.equal(a.synthetic.bases, c.synthetic.bases)


@pytest.mark.parametrize("objective", ["dm", "dc"])
def test_resume_equals_uninterrupted_run(tmp_path, objective):
    data = separable_dataset()
    full = distill(data, tiny_config(objective=objective, iterations=6))
    cfg = tiny_config(objective=objective, iterations=6, checkpoint_dir=str(tmp_path / "ckpt"))
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] >= 3

    with pytest.raises(DistillationInterrupted) as info:
        distill(data, cfg, should_stop=stop)
    assert info.value.iteration == 3
    resumed = distill(data, cfg, resume=True)
    for k, v in full.tensors().items():
        assert torch.equal(v, resumed.tensors()[k]), k


def test_resume_refuses_changed_settings(tmp_path):
    data = separable_dataset()
    cfg = tiny_config(iterations=2, checkpoint_dir=str(tmp_path / "ckpt"))
    distill(data, cfg)
    cfg2 = tiny_config(iterations=4, checkpoint_dir=str(tmp_path / "ckpt"), lambda_cos=0.5)
    with pytest.raises(ConfigError, match="lambda_cos"):
        distill(data, cfg2, resume=True)
    with pytest.raises(ConfigError, match="nothing to resume"):
        distill(data, tiny_config(checkpoint_dir=str(tmp_path / "none")), resume=True)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    data = separable_dataset()
    ckpt = tmp_path / "ckpt"
    cfg = tiny_config(iterations=2, checkpoint_dir=str(ckpt), checkpoint_every=1)
    distill(data, cfg)
    good = json.loads((ckpt / "state.json").read_text())
    # no adversary: trained on the recomposed (already exploded) pairs, it would fail within iteration 0
    bad = tiny_config(iterations=50, checkpoint_dir=str(tmp_path / "bad"), checkpoint_every=1, lr_bases=1e30,
                      lr_hallucinators=1e30, lambda_cos=0.0, lambda_con=0.0, lambda_task=0.0)
    with pytest.raises(NonFiniteLossError, match="non-finite"):
        distill(data, bad)
    assert good  # the earlier run's checkpoint is untouched and loadable
    from haba_core.distillation.checkpoint import load_checkpoint
    state = load_checkpoint(tmp_path / "bad")
    assert all(torch.isfinite(v).all() for k, v in state["synthetic"].items() if v.is_floating_point())


def test_distilled_set_beats_its_own_initialisation():
    train, test = separable_dataset(per_class=30), separable_dataset(per_class=20, split="test")
    ev = EvalConfig(runs=2, epochs=30, net_width=8, net_depth=2, device="cpu", dsa=False, batch_size=64)
    cfg = tiny_config(parameterization="plain", basis_init="noise", bpc=1, iterations=0)
    init = evaluate(distill(train, cfg), test, ev)
    cfg.iterations = 40
    trained = evaluate(distill(train, cfg), test, ev)
    assert trained.mean > init.mean + 10


def test_haba_result_round_trips_through_disk(tmp_path):
    result = distill(separable_dataset(), tiny_config())
    result.save(tmp_path / "out")
    again = FactorizedDataset.load(tmp_path / "out")
    for k, v in result.tensors().items():
        assert torch.equal(v, again.tensors()[k])
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["objective"] == "dm" and meta["num_hallucinators"] == 3 and meta["seed"] == 0
    assert meta["storage"]["parameters"] == result.storage().parameters


def test_distill_leaves_global_random_state_alone():
    import random

    import numpy as np
    torch.manual_seed(11)
    random.seed(11)
    np.random.seed(11)
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(11)
    random.seed(11)
    np.random.seed(11)
    distill(separable_dataset(), tiny_config(iterations=1))
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(expected[0], got[0]) and expected[1:] == got[1:]


def _per_hallucinator_change(before, after):
    """Largest absolute change of each hallucinator's parameters (keys are stacked over hallucinators)."""
    deltas = [(after[k] - before[k]).abs().flatten(1).amax(1) for k in before if k.startswith("hallucinators.")]
    return torch.stack(deltas).amax(0)


def test_per_basis_pairing_trains_every_hallucinator_at_plain_cost(monkeypatch):
    from haba_core.factorization import synthetic_set

    data = separable_dataset()
    init = distill(data, tiny_config(iterations=0, hallucinators=4)).tensors()
    seen = []
    compose = synthetic_set.SyntheticSet.compose

    def recording(self, basis_index, hallucinator=None):
        if torch.is_grad_enabled():
            seen.append(basis_index.numel())
        return compose(self, basis_index, hallucinator)

    monkeypatch.setattr(synthetic_set.SyntheticSet, "compose", recording)
    cfg = tiny_config(iterations=3, hallucinators=4, hallucinators_per_step=1, hallucinator_pairing="per_basis",
                      lambda_cos=0.0, lambda_con=0.0, lambda_task=0.0)
    result = distill(data, cfg)
    assert len(seen) == 3 and all(n == result.synthetic.num_bases for n in seen)  # one image per basis per step
    assert (_per_hallucinator_change(init, result.tensors()) > 0).all()
    shared = distill(data, tiny_config(iterations=1, hallucinators=4, hallucinators_per_step=1,
                                       lambda_cos=0.0, lambda_con=0.0, lambda_task=0.0)).tensors()
    assert int((_per_hallucinator_change(init, shared) > 0).sum()) == 1  # the paper's pairing: one H per step


def test_per_basis_pairing_keeps_the_cos_term_and_rejects_unknown_modes():
    result = distill(separable_dataset(), tiny_config(hallucinator_pairing="per_basis"))
    assert any(h["cos"] != 0.0 for h in result.history)
    with pytest.raises(ConfigError):
        distill(separable_dataset(), tiny_config(hallucinator_pairing="random"))


def test_recipes_build_configs_and_reject_unknown_names():
    from haba_core import UnknownNameError, recipe, recipe_config

    modest = recipe_config("modest", ipc=2, hallucinator={"depth": 2})
    assert modest.parameterization == "idc-haba" and modest.lambda_cos == 0.0 and modest.ipc == 2
    assert modest.hallucinator.affine_stride == 2 and modest.hallucinator.depth == 2  # nested keys merge
    recipe("modest")["lambda_cos"] = 1.0  # a copy: the registry is unchanged
    assert recipe_config("modest").lambda_cos == 0.0
    assert recipe_config("paper") == DistillConfig().validate()
    with pytest.raises(UnknownNameError):
        recipe("turbo")


def test_modest_recipe_distils_within_its_budget():
    from haba_core import plan_budget, recipe_config

    data = separable_dataset()
    cfg = recipe_config("modest", ipc=4, bpc=None, hallucinators=2, iterations=2, net_width=8, net_depth=2,
                        device="cpu")
    result = distill(data, cfg)
    plain = plan_budget(image_shape=data.image_shape, num_classes=data.num_classes, parameterization="plain", ipc=4)
    assert result.storage().parameters <= plain.budget_parameters
    assert all(h["adv"] == 0.0 and h["cos"] == 0.0 for h in result.history)


def test_modest_recipe_keeps_hallucinator_steps_bounded_under_dc():
    """Adam at lr 1e-4: each hallucinator parameter moves at most ~lr per step (SGD at η_B blew them up)."""
    from haba_core import recipe_config

    data = separable_dataset()
    common = dict(objective="dc", ipc=4, bpc=None, hallucinators=2, net_width=8, net_depth=2, device="cpu", seed=3)
    start = distill(data, recipe_config("modest", iterations=0, **common)).synthetic.hallucinators
    after = distill(data, recipe_config("modest", iterations=3, **common)).synthetic.hallucinators
    moved = max(float((a - b).abs().max()) for a, b in zip(after.parameters(), start.parameters()))
    assert 0.0 < moved <= 3 * 1e-4 * 1.01


def test_fixed_bank_recipe_keeps_the_pca_bank_and_moves_only_the_bases():
    """``fixed-bank``: the hallucinators stay exactly at their PCA initialisation; the bases learn; one
    hallucination per basis per step."""
    from haba_core import recipe_config

    data = separable_dataset()
    common = dict(objective="dm", ipc=4, bpc=None, hallucinators=2, net_width=8, net_depth=2, device="cpu", seed=3)
    cfg = recipe_config("fixed-bank", iterations=3, **common)
    assert cfg.hallucinators_per_step == 1 and cfg.hallucinator_pairing == "per_basis"
    assert cfg.parameterization == "idc-haba" and cfg.hallucinator.init == "pca"
    start = distill(data, recipe_config("fixed-bank", iterations=0, **common)).synthetic
    after = distill(data, cfg).synthetic
    for a, b in zip(after.hallucinators.parameters(), start.hallucinators.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(after.bases, start.bases)
    learned = distill(data, recipe_config("modest", iterations=3, **common)).synthetic
    assert any(not torch.equal(a, b) for a, b in zip(learned.hallucinators.parameters(), start.hallucinators.parameters()))


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_time_limit_stops_the_run_on_the_chosen_clock(clock):
    cfg = tiny_config(iterations=10**6, time_limit_s=0.05, time_limit_clock=clock)
    seen = []
    result = distill(separable_dataset(), cfg, observe=lambda done, spent, synth: seen.append(spent))
    t = result.meta["timings"]
    assert 1 <= t["iterations_run"] < 10**6  # stopped by the budget, a normal return
    spent = t["iterations_run"] * (t["iteration_cpu_s"] if clock == "cpu" else t["iteration_s"])
    assert spent >= 0.05 and t["iteration_cpu_s"] > 0
    assert seen[-1] == pytest.approx(spent, rel=1e-9)  # observe sees the budget's clock too
    with pytest.raises(ConfigError, match="time_limit_clock"):
        tiny_config(time_limit_clock="gpu").validate()
