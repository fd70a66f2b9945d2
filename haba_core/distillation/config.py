"""DistillConfig: every knob of a distillation run, as one dataclass tree."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from ..errors import ConfigError
from ..factorization import HallucinatorConfig, check_parameterization
from ..objectives import DCConfig, DMConfig, MTTConfig, check_objective, objective_names, objective_spec
from .precision import PRECISIONS

# Learning rates of the synthetic data per built-in objective, from the DC / DM / MTT code (SGD, momentum 0.5);
# each objective's ObjectiveSpec.lr_bases is the source.
DEFAULT_LR_BASES = {name: objective_spec(name).lr_bases for name in objective_names()}


@dataclass
class DistillConfig:
    """Configuration of :func:`haba_core.distill`.

    ``time_limit_s`` stops the run early (a normal return) once that much time has been spent on
    iterations — for compute-matched comparisons; the result records how many iterations ran.
    ``time_limit_clock`` picks the clock: ``"wall"`` (default) or ``"cpu"`` (this process's CPU seconds,
    which a shared machine's load does not eat into; with one torch thread, the time of one idle core).
    Budget: ``ipc`` (images per class, converted by :func:`haba_core.budget.plan_budget`) or ``bpc``
    (explicit bases per class, with ``hallucinators``). Loss weights follow the paper (Tab. 13);
    setting a λ to 0 switches that term off (Tab. 4 ablation). ``hallucinator_pairing``: ``"shared"`` (the
    paper) sends every basis of a step through the same ``hallucinators_per_step`` random hallucinators;
    ``"per_basis"`` draws them independently for each basis, so a step mixes all hallucinators and, with
    ``hallucinators_per_step=1``, costs what a plain step costs.

    The defaults are the paper (recipe ``paper``): randomly initialised hallucinators (``hallucinator.init``
    "random"; depth ≥ 2 in the Tab. 9 "pyramid" layout), η_H = η_B for every objective
    (``hallucinator_lr_rule="paper"``; "dm-scaled" is the toolkit's η_B/100 under DM), and the adversary of
    Alg. 1: trained after the synthetic update on the recomposed pairs (``adversary_order="after"``;
    "before" trains it on the images composed before the update), SGD with η_F = 0.001 and momentum
    ``adversary_momentum`` 0.9 and DSA on its inputs when the run uses DSA (``adversary_dsa``) — the paper
    states neither, the authors' code uses both — and L_cos / L_con normalised by 1/|H'|² over ordered pairs
    as in Eq. 3/5 (``contrastive_normalization="paper"``; "mean" averages over pairs, 2× at |H'| = 2).
    ``adversary_every`` k > 1 (an option of this toolkit, not the paper) runs L_cos and the adversary update only
    on iterations 0, k, 2k, …: the adversary costs ~1/k of its per-iteration time (BENCHMARKS.md, speed section).
    ``adversary_width`` (also the toolkit's, ConvNet only) gives the adversary F its own, usually smaller, width
    (``None``: ``net_width``, as the paper); such an F does not start from federated ``network_init`` weights.
    ``adversary_renew`` (the toolkit's; ``False`` = the paper) replaces the trained adversary by a freshly
    initialised, never-trained F drawn every iteration, as DM draws its networks: L_cos then asks the
    hallucinations of a basis to differ under random features, at the cost of one forward/backward of F and
    no adversary update (issue 14's "cheaper diversity signal"; ``lambda_con``/``lambda_task`` are unused; with
    federated ``network_init`` weights and no ``adversary_width`` every draw starts from those weights).
    ``precision`` ``"bf16"`` (the toolkit's; ``"fp32"`` = the paper) runs the forward passes of the distillation
    and adversary networks under bfloat16 autocast (their backward follows): at width 128 on CPUs with
    AMX/AVX-512-BF16 an iteration takes 0.6–0.76× the time; bases, hallucinators, network weights and every loss
    stay float32 (:mod:`haba_core.distillation.precision`). Measured: no accuracy change under DM, −2.7 ± 3.5 points under
    MTT on digits (BENCHMARKS.md, issue 19).
    ``hallucinator_pretrain_steps`` > 0 (the toolkit's, 0 = the paper) pretrains the hallucinators after their
    init on real same-class neighbour pairs (:mod:`haba_core.factorization.pretrain`; Adam at
    ``hallucinator_pretrain_lr``, each image's ``hallucinator_pretrain_neighbours`` nearest neighbours).
    """

    objective: str = "dm"
    parameterization: str = "haba"
    ipc: int | None = 2
    bpc: int | None = None
    hallucinators: int = 5
    budget_rule: str = "exact"
    hallucinator: HallucinatorConfig = field(default_factory=lambda: HallucinatorConfig(init="random",
                                                                                         layout="pyramid"))
    basis_channels: int | None = None
    downsample: int | None = None
    per_class_hallucinators: bool = False
    basis_init: str = "real"

    lambda_dd: float = 1.0
    lambda_cos: float = 0.1
    lambda_con: float = 0.1
    lambda_task: float = 1.0
    temperature: float = 0.1
    hallucinators_per_step: int = 2
    hallucinator_pairing: str = "shared"
    bases_per_step: int | None = None

    lr_bases: float | None = None
    lr_hallucinators: float | None = None
    lr_affine: float | None = None
    hallucinator_lr_rule: str = "paper"
    momentum: float = 0.5
    hallucinator_optimizer: str = "sgd"
    lr_adversary: float = 0.001
    adversary_steps: int = 1
    adversary_every: int = 1
    adversary_width: int | None = None
    precision: str = "fp32"
    hallucinator_pretrain_steps: int = 0
    hallucinator_pretrain_lr: float = 1e-3
    hallucinator_pretrain_neighbours: int = 5
    adversary_order: str = "after"
    adversary_momentum: float = 0.9
    adversary_dsa: bool = True
    adversary_renew: bool = False
    contrastive_normalization: str = "paper"

    iterations: int = 1000
    time_limit_s: float | None = None
    time_limit_clock: str = "wall"
    network: str = "ConvNet"
    net_width: int = 128
    net_depth: int = 3
    net_norm: str = "instancenorm"
    dsa: bool | None = None
    zca: bool = False
    zca_regularization: float = 0.1

    seed: int = 0
    device: str = "auto"
    checkpoint_dir: str | None = None
    checkpoint_every: int = 100

    dm: DMConfig = field(default_factory=DMConfig)
    dc: DCConfig = field(default_factory=DCConfig)
    mtt: MTTConfig = field(default_factory=MTTConfig)

    def validate(self) -> "DistillConfig":
        self.objective = check_objective(self.objective)
        self.parameterization = check_parameterization(self.parameterization)
        self.hallucinator.validate()
        if self.iterations < 0:
            raise ConfigError("iterations must be >= 0")
        if self.basis_init not in ("real", "noise", "herding"):
            raise ConfigError(f"basis_init must be real|noise|herding, got {self.basis_init!r}")
        if self.hallucinator_optimizer not in ("sgd", "adam"):
            raise ConfigError("hallucinator_optimizer must be sgd|adam")
        if self.hallucinators_per_step < 1 or self.adversary_steps < 0 or self.adversary_every < 1:
            raise ConfigError("hallucinators_per_step and adversary_every must be >= 1 and adversary_steps >= 0")
        if self.hallucinator_pairing not in ("shared", "per_basis"):
            raise ConfigError(f"hallucinator_pairing must be shared|per_basis, got {self.hallucinator_pairing!r}")
        for name, allowed in (("hallucinator_lr_rule", ("paper", "dm-scaled")), ("adversary_order", ("after", "before")),
                              ("contrastive_normalization", ("paper", "mean")), ("time_limit_clock", ("wall", "cpu"))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be {'|'.join(allowed)}, got {getattr(self, name)!r}")
        if self.adversary_width is not None:
            if isinstance(self.adversary_width, bool) or not isinstance(self.adversary_width, int) \
                    or self.adversary_width < 1:
                raise ConfigError(f"adversary_width must be a positive integer or None, got {self.adversary_width!r}")
            if not self.network.lower().startswith("convnet"):
                raise ConfigError(f"adversary_width needs a ConvNet distillation network, got {self.network!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be {'|'.join(PRECISIONS)}, got {self.precision!r}")
        if self.hallucinator_pretrain_steps < 0 or self.hallucinator_pretrain_lr <= 0 \
                or self.hallucinator_pretrain_neighbours < 1:
            raise ConfigError("hallucinator_pretrain_steps must be >= 0, hallucinator_pretrain_lr > 0 and "
                              "hallucinator_pretrain_neighbours >= 1")
        if not isinstance(self.adversary_renew, bool):
            raise ConfigError(f"adversary_renew must be true or false, got {self.adversary_renew!r}")
        if not 0 <= self.adversary_momentum < 1:
            raise ConfigError(f"adversary_momentum must be in [0, 1), got {self.adversary_momentum}")
        if self.checkpoint_every < 1:
            raise ConfigError("checkpoint_every must be >= 1")
        return self

    @property
    def factorized(self) -> bool:
        return self.parameterization in ("haba", "idc-haba")

    @property
    def use_dsa(self) -> bool:
        return objective_spec(self.objective).uses_dsa(self.dsa)  # None: as in the objective's paper

    @property
    def resolved_lr_bases(self) -> float:
        return self.lr_bases if self.lr_bases is not None else objective_spec(self.objective).lr_bases

    @property
    def resolved_lr_hallucinators(self) -> float:
        """``lr_hallucinators``, else the paper's η_H = η_B (``hallucinator_lr_rule="paper"``). With
        ``hallucinator_lr_rule="dm-scaled"`` (recipe ``paper-pca``) DM uses η_B / 100: a hallucinator's gradient
        sums over every composed image it produced and η_B = 1 wrecks the identity-like start of the pca init
        (measured in BENCHMARKS.md, ablation "hallucinator learning rate"). Under DC's
        scale-free (cosine) loss, SGD lets the hallucinators' output grow without bound at any of these rates
        (BENCHMARKS.md, "hallucinator drift"); ``hallucinator_optimizer="adam"`` with lr 1e-4 (the ``modest``
        recipe) keeps every step bounded."""
        if self.lr_hallucinators is not None:
            return self.lr_hallucinators
        scaled = self.hallucinator_lr_rule == "dm-scaled" and objective_spec(self.objective).dm_scaled_lr
        return self.resolved_lr_bases * (0.01 if scaled else 1.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DistillConfig":
        """Build from a (possibly nested) dict; unknown keys raise :class:`ConfigError`."""
        return _from_dict(cls, data, "")


def _from_dict(kind: type, data: dict[str, Any], where: str, defaults: Any = None) -> Any:
    """Nested tables start from the enclosing dataclass's default (e.g. DistillConfig's paper hallucinator)."""
    known = {f.name: f for f in fields(kind)}
    kwargs = {}
    defaults = kind() if defaults is None else defaults
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"unknown configuration key {where}{key!r}; known: {', '.join(sorted(known))}")
        current = getattr(defaults, key)
        if is_dataclass(current) and isinstance(value, dict):
            kwargs[key] = _from_dict(type(current), value, f"{where}{key}.", current)
        else:
            kwargs[key] = value
    if where:  # a nested table: fields it leaves out keep the enclosing default's values
        base = {f.name: getattr(defaults, f.name) for f in fields(kind)}
        base.update(kwargs)
        kwargs = base
    return kind(**kwargs)
