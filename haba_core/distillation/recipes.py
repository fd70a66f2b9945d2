"""Named starting points for :class:`DistillConfig`.

``paper``     — exactly the HaBa paper (the dataclass defaults): randomly initialised hallucinators
                (Alg. 1 l.1), η_H = η_B for every objective (§4.1), the adversary trained after each
                synthetic update with η_F = 0.001, and λ_DD, λ_cos, λ_con, λ_task = 1, 0.1, 0.1, 1 (Tab. 13)
                with Eq. 3/5's normalisation.
``paper-pca`` — the paper plus two improvements of this toolkit (what ``paper`` meant before issue 15):
                the data-driven ``pca`` hallucinator init and η_H = η_B / 100 under DM.
``modest``    — the combination measured best at modest compute (minutes on a CPU, ~1k iterations;
             BENCHMARKS.md, issue 8): 2× down-sampled bases (``idc-haba``), σ/μ stored at half
             resolution, no adversary (at short budgets its cost buys no accuracy), and Adam with
             lr 1e-4 for the hallucinators: bounded steps keep them near their data-driven start
             (SGD at η_B blows their output up under DC's scale-free loss within a few steps), and the
             ``fill`` budget rule: as many of the hallucinators as leave the least of the budget unused
             (CIFAR-10 IPC 2: 4 and 7 bases per class, not 5 and 6 — +1.6 validation / +2.1 test under DM,
             3 seeds, BENCHMARKS.md, issue 14, session 16; where ``exact`` wastes < 5 %, as at IPC 11, the same plan).
``fixed-bank`` — ``modest`` with the hallucinator bank kept at its data-driven (PCA) initialisation (lr 0 for
             its convolutions and σ/μ) and one hallucination per basis per step, so a step costs about an
             IDC step: a fixed factorization, chosen on validation where it led (CIFAR-10, DM, IPC-11, 10
             CPU-minutes: +1.0 validation / +1.9 test over IDC, 3 seeds; the benchmarks' ``modest-fast-frozen``).
             Not ahead at IPC-2 or under DC (BENCHMARKS.md, issue 14): there ``parameterization="idc"``.
"""

from __future__ import annotations

import copy
from typing import Any

from ..config_layers import merge_layers
from ..errors import UnknownNameError
from .config import DistillConfig

RECIPES: dict[str, dict[str, Any]] = {
    "paper": {},
    "paper-pca": {"hallucinator": {"init": "pca", "layout": "flat"}, "hallucinator_lr_rule": "dm-scaled"},
    "modest": {"parameterization": "idc-haba", "hallucinator": {"init": "pca", "affine_stride": 2, "layout": "flat"},
               "lambda_cos": 0.0, "lambda_con": 0.0, "lambda_task": 0.0,
               "hallucinator_optimizer": "adam", "lr_hallucinators": 1e-4, "budget_rule": "fill"},
}
RECIPES["fixed-bank"] = {**copy.deepcopy(RECIPES["modest"]), "lr_hallucinators": 0.0, "lr_affine": 0.0,
                         "hallucinators_per_step": 1, "hallucinator_pairing": "per_basis"}


# The recipe a run starts from when none is named: the combination measured best at CPU-minutes budgets
# (BENCHMARKS.md), except on the embedded 8x8 digits, where modest's 2x down-sampled bases are 4x4 pixels.
DEFAULT_RECIPE = "modest"
SMALL_IMAGE_DATASETS = ("digits",)


def default_recipe_for(dataset: str | None, *, digits_profile: bool = False) -> str:
    """The recipe a run on ``dataset`` starts from when none is named, for every entry point.

    :data:`DEFAULT_RECIPE` except on the 8x8 digits (also ``split-digits``): ``paper-pca`` there, or ``paper``
    where the caller fixes the hallucinators' init and learning rate itself (``digits_profile=True``,
    haba-distill's digits profile); the paper's random init with eta_H = eta_B blows composed images up there.
    """
    name = str(dataset or "").strip().lower()
    name = name[len("split-"):] if name.startswith("split-") else name  # a continual benchmark's dataset
    if name in SMALL_IMAGE_DATASETS:
        return "paper" if digits_profile else "paper-pca"
    return DEFAULT_RECIPE


def recipe(name: str) -> dict[str, Any]:
    """The recipe's settings as a (nested) dict of :class:`DistillConfig` fields (a copy)."""
    if name not in RECIPES:
        raise UnknownNameError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return copy.deepcopy(RECIPES[name])


def recipe_config(name: str, **overrides: Any) -> DistillConfig:
    """``DistillConfig`` for recipe ``name`` with top-level ``overrides`` applied on top."""
    return DistillConfig.from_dict(merge_layers(recipe(name), overrides)).validate()
