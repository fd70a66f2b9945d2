"""The distillation loop (paper Alg. 1) shared by every objective and parameterization."""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import Tensor, nn

from ..adversary import Adversary, pairwise_cosine_loss
from ..augment import DSA
from ..budget import Plan
from ..coreset import herding_select
from ..data import ImageDataset
from ..errors import ConfigError, DistillationInterrupted, NonFiniteLossError
from ..factorization import SyntheticSet
from ..factorization.pretrain import pretrain_hallucinators, to_basis_shape
from ..factorized_dataset import FactorizedDataset
from ..networks import get_network
from ..objectives import Objective, ObjectiveContext, RealPool, objective_spec, seeded_network
from ..objectives.mtt import PER_STEP_COMPOSITIONS, MTTObjective  # composes its own images per unrolled step (mtt.composition)
from ..preprocess import Preprocessor
from ..runtime import resolve_device
from .checkpoint import check_compatible, has_checkpoint, load_checkpoint, save_checkpoint
from .config import DistillConfig
from .plan import config_plan
from .phases import PhaseHook, PhaseSequence
from .precision import forward_precision

StepCallback = Callable[[int, dict[str, float]], None]


@dataclass
class StepLosses:
    dd: float
    cos: float
    adversary: float

    def as_dict(self) -> dict[str, float]:
        return {"dd": self.dd, "cos": self.cos, "adv": self.adversary}


def network_factory(config: DistillConfig, image_shape: tuple[int, int, int], num_classes: int,
                    device: torch.device, init_state: dict[str, Tensor] | None = None):
    """A function ``generator -> network`` building the distillation architecture reproducibly."""
    kwargs = {}
    if config.network.lower().startswith("convnet"):
        kwargs = {"width": config.net_width, "depth": config.net_depth, "norm": config.net_norm}
        if config.network.lower() in ("convnetd4", "convnetd5"):
            kwargs.pop("depth")

    def build() -> nn.Module:
        net = get_network(config.network, image_shape[0], num_classes, image_shape[1], **kwargs)
        if init_state is not None:
            net.load_state_dict(init_state)
        return net

    return lambda generator: seeded_network(build, generator, device)


def initial_bases(pool: RealPool, plan: Plan, num_classes: int, how: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Bases from random real images of each class (resized / channel-averaged to the basis shape), or noise.

    A class with fewer real images than bases reuses images (sampled with replacement) plus a little noise.
    """
    c_b, h_b, w_b = plan.basis_shape
    chunks, labels = [], []
    for c in range(num_classes):
        if how == "herding" and pool.by_class[c].numel():
            idx = pool.by_class[c]
            feats = pool.images[idx].flatten(1)
            if feats.shape[0] > 2000:
                feats = feats[:2000]
            pick = herding_select(feats, plan.bpc)
            if pick.numel() < plan.bpc:
                pick = torch.cat([pick, torch.randint(idx.numel(), (plan.bpc - pick.numel(),), generator=generator)])
            imgs = pool.images[idx[pick.to(idx.device)]].detach().cpu().float()
            chunks.append(to_basis_shape(imgs, plan.basis_shape))
        elif how == "noise":
            chunks.append(torch.randn((plan.bpc, c_b, h_b, w_b), generator=generator))
        else:
            idx = pool.by_class[c]
            if idx.numel() == 0:
                chunks.append(torch.randn((plan.bpc, c_b, h_b, w_b), generator=generator))
            else:
                if idx.numel() >= plan.bpc:
                    pick = torch.randperm(idx.numel(), generator=generator)[: plan.bpc]
                    extra = torch.zeros(())
                else:
                    pick = torch.randint(idx.numel(), (plan.bpc,), generator=generator)
                    extra = 0.05 * torch.randn((plan.bpc, 1, 1, 1), generator=generator)
                imgs = pool.images[idx[pick.to(idx.device)]].detach().cpu().float()
                chunks.append(to_basis_shape(imgs, plan.basis_shape) + extra)
        labels.append(torch.full((plan.bpc,), c, dtype=torch.long))
    return torch.cat(chunks).contiguous(), torch.cat(labels)


def _optimizer_groups(config: DistillConfig, synth: SyntheticSet, objective: Objective) -> list[torch.optim.Optimizer]:
    lr_b = config.resolved_lr_bases
    opts: list[torch.optim.Optimizer] = [torch.optim.SGD([synth.bases], lr=lr_b, momentum=config.momentum)]
    if synth.hallucinators is not None:
        lr_h = config.resolved_lr_hallucinators
        lr_a = config.lr_affine if config.lr_affine is not None else lr_h
        groups = [{"params": synth.hallucinators.conv_parameters(), "lr": lr_h},
                  {"params": synth.hallucinators.affine_parameters(), "lr": lr_a}]
        if config.hallucinator_optimizer == "adam":
            opts.append(torch.optim.Adam(groups))
        else:
            opts.append(torch.optim.SGD(groups, momentum=config.momentum))
    extra = objective.extra_parameters()
    if extra:
        opts.append(torch.optim.SGD(extra, lr=config.mtt.lr_lr, momentum=0.5))
    return opts


def load_hallucinators(synth: SyntheticSet, state: dict[str, Tensor]) -> None:
    """Copy a hallucinator bank's tensors into ``synth``'s bank; :class:`ConfigError` if they do not fit it."""
    if synth.hallucinators is None:
        raise ConfigError("hallucinator_init needs a factorized parameterization (haba or idc-haba)")
    own = synth.hallucinators.state_dict()
    if set(state) != set(own):
        raise ConfigError(f"hallucinator_init has tensors {sorted(state)}, the bank has {sorted(own)}")
    for name, tensor in own.items():
        given = state[name]
        if not isinstance(given, Tensor) or tuple(given.shape) != tuple(tensor.shape):
            shape = tuple(given.shape) if isinstance(given, Tensor) else type(given).__name__
            raise ConfigError(f"hallucinator_init[{name!r}] has shape {shape}, the bank needs {tuple(tensor.shape)}")
        if given.is_floating_point() and not bool(torch.isfinite(given).all()):
            raise ConfigError(f"hallucinator_init[{name!r}] holds NaN or infinite values")
    with torch.no_grad():
        for name, tensor in own.items():
            tensor.copy_(state[name].to(device=tensor.device, dtype=tensor.dtype))


def build_objective(config: DistillConfig, ctx: ObjectiveContext, trajectories=None) -> Objective:
    """The objective ``config.objective`` names (see :mod:`haba_core.objectives.registry`)."""
    return objective_spec(config.objective).build(config, ctx, trajectories)


def distill(train: ImageDataset, config: DistillConfig, *, resume: bool = False,
            on_step: StepCallback | None = None, network_init: dict[str, Tensor] | None = None,
            trajectories: list[Tensor] | None = None, preprocessor: Preprocessor | None = None,
            should_stop: Callable[[], bool] | None = None,
            observe: Callable[[int, float, SyntheticSet], None] | None = None,
            phase_hook: PhaseHook | None = None,
            hallucinator_init: dict[str, Tensor] | None = None) -> FactorizedDataset:
    """Distil ``train`` into a :class:`FactorizedDataset` (paper Alg. 1 with the chosen L_DD).

    ``resume`` continues from ``config.checkpoint_dir`` (bit-identical on CPU). ``on_step(it, losses)``
    is called after every iteration. ``network_init`` starts every distillation/adversary network from
    given weights (federated refinement); ``preprocessor`` reuses a fitted normalisation/ZCA.
    A NaN/inf loss raises :class:`NonFiniteLossError` and leaves the last good checkpoint in place.
    When ``should_stop()`` turns true (e.g. after Ctrl-C) the run checkpoints after the current iteration
    and raises :class:`DistillationInterrupted`. ``observe(iterations_done, seconds_spent, synthetic)`` sees
    the synthetic set after every iteration (e.g. to snapshot learning curves); ``seconds_spent`` counts the
    iterations only, on the budget's clock (``time_limit_clock``: wall or this process's CPU seconds).
    ``phase_hook(name)`` wraps each phase of every iteration (see :mod:`haba_core.distillation.phases`) for
    timing and profiling. ``hallucinator_init`` starts the hallucinator bank from a given one (the state dict
    of another run's ``synthetic.hallucinators``, e.g. a bank shared across continual experiences) instead of
    its configured initialisation; with ``lr_hallucinators=0`` and ``lr_affine=0`` the bank stays exactly as
    given.
    """
    config.validate()
    device = resolve_device(config.device)
    generator = torch.Generator().manual_seed(config.seed)  # all randomness flows from here; globals untouched
    num_classes = train.num_classes
    image_shape = tuple(train.image_shape)
    t0 = time.perf_counter()

    pre = preprocessor or Preprocessor.fit(train.images, train.mean, train.std, config.zca, config.zca_regularization)
    pre.to(device)
    real_images = pre(train.images.to(device))
    pool = RealPool(real_images, train.labels.to(device), num_classes)

    plan = config_plan(config, image_shape, num_classes)
    bases, labels = initial_bases(pool, plan, num_classes, config.basis_init, generator)
    synth = SyntheticSet(bases, labels, image_shape, num_classes, plan.num_hallucinators, config.hallucinator,
                         plan.per_class_hallucinators, generator=generator).to(device)
    if hallucinator_init is not None:
        load_hallucinators(synth, hallucinator_init)
    elif synth.is_factorized:
        if config.hallucinator.init == "pca":
            synth.init_hallucinators_from_data(pool.images, pool.labels, generator)
        if config.hallucinator_pretrain_steps:
            pretrain_hallucinators(synth, pool.images, pool.labels, steps=config.hallucinator_pretrain_steps,
                                   lr=config.hallucinator_pretrain_lr,
                                   neighbours=config.hallucinator_pretrain_neighbours, generator=generator)

    make_network = network_factory(config, image_shape, num_classes, device, network_init)
    dsa = DSA() if config.use_dsa else None
    forward_context = functools.partial(forward_precision, config.precision, device)  # every network forward pass
    ctx = ObjectiveContext(pool, num_classes, image_shape, make_network, dsa, device, forward_context=forward_context)
    objective = build_objective(config, ctx, trajectories)
    optimizers = _optimizer_groups(config, synth, objective)
    adversary = None
    make_adversary = make_network
    if synth.is_factorized and (config.lambda_cos or config.lambda_con or config.lambda_task):
        if config.adversary_width is not None and config.adversary_width != config.net_width:
            make_adversary = network_factory(replace(config, net_width=config.adversary_width),
                                             image_shape, num_classes, device)
        adversary = Adversary(make_adversary(generator), config.lr_adversary, momentum=config.adversary_momentum,
                              lambda_con=config.lambda_con, lambda_task=config.lambda_task,
                              temperature=config.temperature, normalization=config.contrastive_normalization,
                              forward_context=forward_context)

    start = 0
    history: list[dict[str, float]] = []
    cfg_dict = config.to_dict()
    if resume:
        if not has_checkpoint(config.checkpoint_dir):
            raise ConfigError(f"nothing to resume: no checkpoint in {config.checkpoint_dir}")
        state = load_checkpoint(config.checkpoint_dir)
        if state["config"].get("objective") == cfg_dict["objective"]:
            objective.load_state_dict(state["objective"])  # first: names an older format (MTT's log α) clearly
        check_compatible(state["config"], cfg_dict)
        synth.load_state_dict(state["synthetic"])
        for opt, s in zip(optimizers, state["optimizers"]):
            opt.load_state_dict(s)
        if adversary is not None:
            adversary.load_state_dict(state["adversary"])
        generator.set_state(state["generator"])
        start = int(state["iteration"])
        history = list(state.get("history", []))

    def snapshot(iteration: int) -> dict:
        return {"iteration": iteration, "config": cfg_dict, "synthetic": synth.state_dict(),
                "optimizers": [o.state_dict() for o in optimizers],
                "adversary": adversary.state_dict() if adversary is not None else None,
                "objective": objective.state_dict(), "generator": generator.get_state(), "history": history}

    def checkpoint(iteration: int) -> None:
        if config.checkpoint_dir:
            save_checkpoint(config.checkpoint_dir, snapshot(iteration))

    n_h = synth.num_hallucinators
    all_bases = torch.arange(synth.num_bases, device=device)
    iterations_run, wall_spent = 0, 0.0  # wall seconds in iterations (evaluation and setup not counted)
    cpu_spent = 0.0  # this process's CPU seconds in iterations (time_limit_clock="cpu")
    for it in range(start, config.iterations):
        t_it, c_it = time.perf_counter(), time.process_time()
        phases = PhaseSequence(phase_hook)
        adversary_now = adversary if it % config.adversary_every == 0 else None
        if adversary_now is not None and config.adversary_renew:
            adversary_now.renew(make_adversary(generator))  # a fresh random F, as DM draws its networks
        try:
            losses = _step(config, synth, objective, adversary_now, optimizers, generator, all_bases, n_h, device,
                           dsa, phases)
        finally:
            phases.close()
        if not all(math.isfinite(v) for v in losses.as_dict().values()):
            raise NonFiniteLossError(
                f"non-finite loss at iteration {it} ({losses.as_dict()}); "
                + (f"the last good checkpoint is in {config.checkpoint_dir}; " if config.checkpoint_dir else "")
                + "lower the learning rates (lr_bases / lr_hallucinators) and retry")
        history.append({"iteration": it, **losses.as_dict()})
        iterations_run += 1
        wall_spent += time.perf_counter() - t_it
        cpu_spent += time.process_time() - c_it
        if on_step is not None:
            on_step(it, losses.as_dict())
        spent = cpu_spent if config.time_limit_clock == "cpu" else wall_spent
        if observe is not None:
            observe(it + 1, spent, synth)
        if (it + 1) % config.checkpoint_every == 0:
            checkpoint(it + 1)
        if config.time_limit_s is not None and spent >= config.time_limit_s:
            break
        if should_stop is not None and should_stop() and it + 1 < config.iterations:
            checkpoint(it + 1)
            raise DistillationInterrupted(it + 1, config.checkpoint_dir)
    if config.checkpoint_dir and iterations_run:
        checkpoint(start + iterations_run)

    learned_lr = objective.learned_lr()
    meta = {"dataset": train.name, "objective": config.objective, "parameterization": config.parameterization,
            "seed": config.seed, "config": cfg_dict,
            "budget": {"ipc": config.ipc if config.bpc is None else None, "bpc": plan.bpc,
                       "num_hallucinators": plan.num_hallucinators, "budget_parameters": plan.budget_parameters,
                       "rule": config.budget_rule, "notes": plan.notes},
            "timings": {"total_s": time.perf_counter() - t0,
                        "iteration_s": wall_spent / iterations_run if iterations_run else None,
                        "iteration_cpu_s": cpu_spent / iterations_run if iterations_run else None,
                        "iterations_run": iterations_run},
            "history_tail": history[-5:]}
    result = FactorizedDataset(synth, pre, train.classes, meta, learned_lr)
    result.history = history  # per-iteration loss terms; kept out of meta.json (it grows with iterations)
    return result


def _compose_per_basis(synth: SyntheticSet, basis_idx: Tensor, k: int, n_h: int,
                       generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each basis through ``k`` distinct hallucinators drawn for it alone (hallucinator-major rows)."""
    choice = torch.rand((basis_idx.numel(), n_h), generator=generator).argsort(1)[:, :k].t().reshape(-1)
    b = basis_idx.repeat(k)
    h = choice.to(basis_idx.device)
    return synth.compose(b, h), synth.labels[b], b, h


def _per_step_draw(synth: SyntheticSet, basis_idx: Tensor, n_h: int, generator: torch.Generator,
                   shared: bool = False):
    """MTT's per-step composition (the paper): the step's bases, each through one freshly drawn hallucinator
    (``shared``: one hallucinator drawn for all of them, as the public code derived from the paper's)."""
    def draw(idx: Tensor) -> tuple[Tensor, Tensor]:
        b = basis_idx[idx]
        h = torch.randint(n_h, (1 if shared else b.numel(),), generator=generator).expand(b.numel())
        return synth.compose(b, h.to(b.device)), synth.labels[b]
    return draw


def _step(config: DistillConfig, synth: SyntheticSet, objective: Objective, adversary: Adversary | None,
          optimizers: list[torch.optim.Optimizer], generator: torch.Generator, all_bases: Tensor, n_h: int,
          device: torch.device, dsa: DSA | None = None, phases: PhaseSequence | None = None) -> StepLosses:
    """One iteration (Alg. 1): compose pairs, L_S = λ_DD·L_DD + λ_cos·L_cos, update S, then update F on the
    same pairs recomposed by the updated S (``adversary_order="after"``) or on the pre-update images."""
    phases = phases or PhaseSequence(None)
    phases.enter("compose")
    augment: Callable[[Tensor], Tensor] | None = None
    if dsa is not None and config.adversary_dsa:
        augment = functools.partial(dsa, generator=generator)
    if config.bases_per_step and config.bases_per_step < all_bases.numel():
        basis_idx = all_bases[torch.randperm(all_bases.numel(), generator=generator)[: config.bases_per_step].to(device)]
    else:
        basis_idx = all_bases
    if n_h > 0 and config.hallucinator_pairing == "per_basis":
        images, labels, b_idx, h_idx = _compose_per_basis(synth, basis_idx, min(config.hallucinators_per_step, n_h),
                                                          n_h, generator)
    else:
        if n_h > 0:
            k = min(config.hallucinators_per_step, n_h)
            hall_idx = torch.randperm(n_h, generator=generator)[:k].to(device)
        else:
            hall_idx = torch.zeros(1, dtype=torch.long, device=device)
        images, labels, b_idx, h_idx = synth.compose_pairs(basis_idx, hall_idx)
    phases.enter("objective")
    if not config.lambda_dd:
        l_dd = images.new_zeros(())
    elif n_h > 0 and isinstance(objective, MTTObjective) and objective.config.composition in PER_STEP_COMPOSITIONS:
        draw = _per_step_draw(synth, basis_idx, n_h, generator, shared=objective.config.composition == "per_step_shared")
        l_dd = objective.unrolled_loss(draw, basis_idx.numel(), generator)
    else:
        l_dd = objective.loss(images, labels, generator)
    loss = config.lambda_dd * l_dd
    l_cos = images.new_zeros(())
    if adversary is not None and config.lambda_cos and n_h > 1 and min(config.hallucinators_per_step, n_h) > 1:
        phases.enter("cosine")
        for p in adversary.network.parameters():
            p.requires_grad_(False)
        adversary.network.eval()
        l_cos = pairwise_cosine_loss(adversary.features(augment(images) if augment else images), b_idx, h_idx,
                                     config.contrastive_normalization)
        for p in adversary.network.parameters():
            p.requires_grad_(True)
        loss = loss + config.lambda_cos * l_cos
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    if loss.requires_grad:
        phases.enter("backward")
        loss.backward()
        phases.enter("optimizer")
        for opt in optimizers:
            opt.step()
        objective.after_step()
    adv_loss = 0.0
    if adversary is not None and config.adversary_steps and not config.adversary_renew:
        phases.enter("adversary")
        adv_images = images.detach()
        if config.adversary_order == "after":
            with torch.no_grad():
                adv_images = synth.compose(b_idx, h_idx)
        for _ in range(config.adversary_steps):
            adv_loss = adversary.step(adv_images, labels, b_idx, augment)

    def sample() -> tuple[Tensor, Tensor]:
        return synth.sample_epoch(generator)

    phases.enter("after_update")
    objective.after_update(sample, generator)
    phases.close()
    return StepLosses(float(l_dd.detach()), float(l_cos.detach()), adv_loss)
