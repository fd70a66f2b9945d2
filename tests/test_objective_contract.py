"""The shared test base: every registered objective and every parameterization must pass these.

Parametrized from the registries (``objective_names()``, ``PARAMETERIZATIONS``), so a new objective or
parameterization is tested as soon as it is registered. CPU only, tiny sizes.
"""

import math

import pytest
import torch

from haba_core import DSA
from haba_core.distillation import network_factory
from haba_core.distillation.loop import build_objective, initial_bases
from haba_core.budget import plan_budget
from haba_core.factorization import PARAMETERIZATIONS, SyntheticSet
from haba_core.objectives import ObjectiveContext, RealPool, objective_names, objective_spec

from core_fixtures import separable_dataset, tiny_config

CPU = torch.device("cpu")


def _trajectories(cfg, data):
    """A short random walk with the distillation network's parameter count (stands in for experts)."""
    g = torch.Generator().manual_seed(7)
    net = network_factory(cfg, data.image_shape, data.num_classes, CPU)(g)
    start = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    steps = [start]
    for _ in range(cfg.mtt.expert_epochs + 2):
        steps.append(steps[-1] + 1e-2 * torch.randn(start.shape, generator=g))
    return [torch.stack(steps)]


def _objective(name):
    data = separable_dataset()
    cfg = tiny_config(objective=name)
    cfg.mtt.syn_steps, cfg.mtt.expert_epochs, cfg.mtt.max_start_epoch = 2, 1, 2
    x = (data.images - 0.5) / 0.3
    ctx = ObjectiveContext(RealPool(x, data.labels, data.num_classes), data.num_classes, data.image_shape,
                           network_factory(cfg, data.image_shape, data.num_classes, CPU),
                           DSA() if cfg.use_dsa else None, CPU)
    traj = _trajectories(cfg, data) if objective_spec(name).needs_trajectories else None
    return build_objective(cfg, ctx, traj), x


def _synthetic(x, per_class=2):
    labels = torch.arange(4).repeat_interleave(per_class)
    pick = torch.cat([torch.nonzero(torch.arange(x.shape[0]) % 4 == c).flatten()[:per_class] for c in range(4)])
    return x[pick].clone().requires_grad_(True), labels


def _loss(objective, syn, labels, seed=3):
    return objective.loss(syn, labels, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", objective_names())
def test_objective_loss_is_a_finite_scalar(name):
    objective, x = _objective(name)
    loss = _loss(objective, *_synthetic(x))
    assert loss.ndim == 0 and math.isfinite(float(loss.detach()))


@pytest.mark.parametrize("name", objective_names())
def test_objective_gradient_reaches_images_and_its_own_parameters(name):
    objective, x = _objective(name)
    syn, labels = _synthetic(x)
    _loss(objective, syn, labels).backward()
    assert syn.grad is not None and syn.grad.abs().sum() > 0
    for p in objective.extra_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", objective_names())
def test_objective_same_seed_same_loss(name):
    a, x = _objective(name)
    b, _ = _objective(name)
    syn, labels = _synthetic(x)
    assert torch.equal(_loss(a, syn, labels).detach(), _loss(b, syn, labels).detach())


@pytest.mark.parametrize("name", objective_names())
def test_objective_hooks_and_state_round_trip(name):
    objective, x = _objective(name)
    syn, labels = _synthetic(x)
    objective.after_step()
    objective.after_update(lambda: (syn.detach(), labels), torch.Generator().manual_seed(0))
    state = objective.state_dict()
    again, _ = _objective(name)
    again.load_state_dict(state)
    assert again.learned_lr() == objective.learned_lr()
    spec = objective_spec(name)
    assert spec.lr_bases > 0 and spec.stored_numbers == len(objective.extra_parameters())


def _synthetic_set(param, seed=0):
    data = separable_dataset(channels=3)
    cfg = tiny_config(parameterization=param, downsample=2 if param.startswith("idc") else None)
    plan = plan_budget(image_shape=data.image_shape, num_classes=data.num_classes, parameterization=param, ipc=None,
                       bpc=cfg.bpc, hallucinators=cfg.hallucinators, hallucinator=cfg.hallucinator,
                       downsample=cfg.downsample)
    g = torch.Generator().manual_seed(seed)
    pool = RealPool(data.images, data.labels, data.num_classes)
    bases, labels = initial_bases(pool, plan, data.num_classes, "real", g)
    return SyntheticSet(bases, labels, data.image_shape, data.num_classes, plan.num_hallucinators,
                        cfg.hallucinator, plan.per_class_hallucinators, generator=g), data


@pytest.mark.parametrize("param", PARAMETERIZATIONS)
def test_parameterization_composes_finite_images_of_the_data_shape(param):
    synth, data = _synthetic_set(param)
    images, labels = synth.materialize()
    assert tuple(images.shape[1:]) == tuple(data.image_shape) and images.shape[0] == labels.shape[0]
    assert torch.isfinite(images).all()


@pytest.mark.parametrize("param", PARAMETERIZATIONS)
def test_parameterization_gradient_reaches_every_learnable_tensor(param):
    synth, _ = _synthetic_set(param)
    every_hallucinator = torch.arange(max(1, synth.num_hallucinators))
    images, _, _, _ = synth.compose_pairs(torch.arange(synth.num_bases), every_hallucinator)
    (images * torch.linspace(-1, 1, images.numel()).view_as(images)).sum().backward()
    for name, p in synth.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("param", PARAMETERIZATIONS)
def test_parameterization_same_seed_same_images(param):
    a, _ = _synthetic_set(param, seed=4)
    b, _ = _synthetic_set(param, seed=4)
    assert torch.equal(a.materialize()[0], b.materialize()[0])
