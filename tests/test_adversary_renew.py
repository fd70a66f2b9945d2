"""adversary_renew (issue 14): L_cos under a fresh, never-trained F each iteration; False is the paper."""

import contextlib

import pytest
import torch

from haba_core import ConfigError, distill
from haba_core.adversary import Adversary
from haba_core.distillation.checkpoint import check_compatible

from core_fixtures import separable_dataset, tiny_config


def run(iterations=4, phases=None, **kw):
    seen = []

    def hook(name):
        phases.append(name)
        return contextlib.nullcontext()

    fd = distill(separable_dataset(), tiny_config(iterations=iterations, **kw),
                 on_step=lambda it, losses: seen.append(losses), phase_hook=hook if phases is not None else None)
    return fd, seen


def test_renewed_adversary_is_drawn_every_iteration_and_never_trained(monkeypatch):
    drawn, trained = [], []
    original_renew, original_step = Adversary.renew, Adversary.step

    def renew(self, net):
        drawn.append(net)
        original_renew(self, net)

    def step(self, *args, **kwargs):
        trained.append(1)
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(Adversary, "renew", renew)
    monkeypatch.setattr(Adversary, "step", step)
    phases = []
    _, losses = run(iterations=4, phases=phases, adversary_renew=True)
    assert len(drawn) == 4 and len({id(n) for n in drawn}) == 4  # a new network per iteration
    first = [p for p in drawn[0].parameters()][0]
    assert not torch.equal(first, [p for p in drawn[1].parameters()][0])  # a fresh random draw, not a copy
    assert not trained and "adversary" not in phases
    assert all(l["adv"] == 0.0 for l in losses) and all(l["cos"] != 0.0 for l in losses)


def test_renewed_cosine_term_moves_the_hallucinators_alone():
    # L_DD off: only L_cos under random features acts; learned hallucinators move, frozen ones do not
    start, _ = run(iterations=0, adversary_renew=True)
    learned, _ = run(iterations=3, adversary_renew=True, lambda_dd=0.0, lambda_cos=1.0)
    frozen, _ = run(iterations=3, adversary_renew=True, lambda_dd=0.0, lambda_cos=1.0, lr_hallucinators=0.0,
                    lr_affine=0.0)
    s0 = start.synthetic.hallucinators.state_dict()
    moved = learned.synthetic.hallucinators.state_dict()
    kept = frozen.synthetic.hallucinators.state_dict()
    assert any(not torch.equal(s0[k], moved[k]) for k in s0)
    assert all(torch.equal(s0[k], kept[k]) for k in s0)


def test_same_seed_same_result_and_differs_from_the_paper_adversary():
    a, _ = run(adversary_renew=True)
    b, _ = run(adversary_renew=True)
    paper, _ = run()
    assert torch.equal(a.synthetic.bases, b.synthetic.bases)
    assert not torch.equal(a.synthetic.bases, paper.synthetic.bases)


def test_resume_with_renewed_adversary_equals_uninterrupted_run(tmp_path):
    from haba_core import DistillationInterrupted

    full, _ = run(iterations=5, adversary_renew=True)
    cfg = tiny_config(iterations=5, adversary_renew=True, checkpoint_dir=str(tmp_path / "ckpt"))
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] >= 2

    with pytest.raises(DistillationInterrupted):
        distill(separable_dataset(), cfg, should_stop=stop)
    resumed = distill(separable_dataset(), cfg, resume=True)
    assert torch.equal(full.synthetic.bases, resumed.synthetic.bases)


def test_bad_values_are_refused_and_old_checkpoints_mean_the_paper():
    for bad in ("yes", 1, None):
        with pytest.raises(ConfigError, match="adversary_renew"):
            tiny_config(adversary_renew=bad).validate()
    current = tiny_config().to_dict()
    check_compatible({k: v for k, v in current.items() if k != "adversary_renew"}, current)
    with pytest.raises(ConfigError, match="adversary_renew"):
        check_compatible({k: v for k, v in current.items() if k != "adversary_renew"},
                         {**current, "adversary_renew": True})
