"""Settings of a ``haba-distill`` run: built-in defaults < recipe < TOML file < ``--set`` < command-line flags
(layered and checked with :mod:`haba_core.config_layers`, the helpers every entry point uses).

A configuration is a nested dict whose keys are :class:`haba_core.DistillConfig` fields (nested tables
``hallucinator``, ``dm``, ``dc``, ``mtt``) plus the run-level keys of :class:`RunSettings` (dataset,
data root, evaluation, output). The recipe (a :data:`haba_core.RECIPES` name) comes from ``--recipe``, else
the file's top-level ``recipe`` key (the shipped presets name one: ``"paper"``, or ``"paper-pca"`` / ``"modest"``
for some ablations), else ``default_recipe_for``
(``modest``; ``paper`` on the 8×8 digits). It is checked key by key — an unknown key or a value of the wrong type
raises :class:`haba_core.ConfigError` naming the key and where it came from — and then turned into a
``DistillConfig`` and an ``EvalConfig``. The argparse namespace never reaches ``haba_core``.
"""

from __future__ import annotations

import copy
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from haba_core import RECIPES, ConfigError, DistillConfig, EvalConfig
from haba_core import recipe as recipe_settings
from haba_core.config_layers import check_value, merge_layers, parse_set
from haba_core.distillation.recipes import DEFAULT_RECIPE, default_recipe_for
from haba_core.evaluate import LEARNED_LR_SCOPES

from .cli_errors import _toml
from .presets import resolve_config

# Keys a preset may carry for documentation only.
DOC_KEYS = ("description",)

# The recipe a run starts from when neither --recipe nor the configuration file names one is
# haba_core.distillation.recipes.default_recipe_for(dataset, digits_profile=True): one rule for every entry point.
# ``modest`` was measured best at CPU-minutes budgets (BENCHMARKS.md, "10 minutes per run": ahead of plain
# distillation at equal bytes in all 8 DM/DC x MNIST/CIFAR-10 x IPC-2/11 cells); ``paper`` reproduces the paper's
# settings. On the embedded 8x8 digits modest's 2x down-sampled bases are 4x4 pixels: there it scored 56-62 %
# against 75-81 % for the paper's settings with the digits profile below (identity-initialised hallucinators at
# lr 0.01; IPC 3, 300 DM iterations, seeds 0-2, 5 evaluation runs; docs/cli.md).
# Both budget keys: a layer that sets one clears a lower layer's other.
BUDGET_KEYS = (("ipc", "bpc"),)


@dataclass
class RunSettings:
    """Run-level settings of ``haba-distill`` that are not part of :class:`DistillConfig`."""

    dataset: str = "digits"
    data_root: str | None = None
    out: str | None = None
    compare: bool = True
    eval_arch: str = "ConvNet"
    eval_epochs: int = 300
    eval_runs: int = 5
    eval_dsa: bool = True
    eval_lr: float | None = None
    eval_learned_lr_on: str = EvalConfig.learned_lr_on  # or "every-network" (haba_core.evaluation_lr)
    eval_batch_size: int = 256
    val_per_class: int = 0  # > 0: distil on train minus a fixed validation split, score both (haba_core.validation_split)
    threads: int | None = None
    description: str | None = None


# Built-in defaults by dataset. The embedded ``digits`` set (8×8, 1,257 training images) gets a
# quick-start profile that finishes HaBa + the plain baseline in about two minutes on 2 CPU cores;
# every other dataset starts from the DistillConfig / literature defaults (ConvNet-128, 300 epochs,
# 5 runs, DSA) and is meant to be configured with a preset or a TOML file.
# Measured on digits (DM, width 32, 300 iterations, 5 evaluation runs of 300 epochs): HaBa at IPC 3 with
# identity-initialised hallucinators and lr_hallucinators 0.01 ≈ 79 % vs plain ≈ 77 %; the paper's random
# hallucinator init (the ``paper`` recipe's; ≈ 71 %) and IPC 2 (1 basis/class, ≈ 73 % vs 76 %) do worse. DSA during
# evaluation helps on 8×8 digits too (plain 60 % → 76 % at IPC 2), so it stays on. One intra-op thread:
# these models are too small to gain from more, and oversubscribed shared machines slow down 10×.
QUICK_PROFILE: dict[str, Any] = {
    "ipc": 3,
    "iterations": 300,
    "net_width": 32,
    "lr_hallucinators": 0.01,
    "hallucinator": {"init": "identity", "layout": "flat"},  # identity needs the flat layout at depth >= 2
    "eval_epochs": 300,
    "eval_dsa": True,
    "threads": 1,
}
STANDARD_PROFILE: dict[str, Any] = {}


def profile_for(dataset: str) -> dict[str, Any]:
    return copy.deepcopy(QUICK_PROFILE if str(dataset).strip().lower() == "digits" else STANDARD_PROFILE)


_DISTILL_FIELDS = {f.name for f in fields(DistillConfig)}
_RUN_FIELDS = {f.name for f in fields(RunSettings)}
KNOWN_TOP_LEVEL = sorted(_DISTILL_FIELDS | _RUN_FIELDS)


def check_layer(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Check one configuration layer (file, ``--set`` or flags): DistillConfig keys plus run-level keys."""
    d_hints, r_hints = typing.get_type_hints(DistillConfig), typing.get_type_hints(RunSettings)
    out = {}
    for key, value in data.items():
        if key in d_hints:
            out[key] = check_value(key, value, d_hints[key], source)
        elif key in r_hints:
            out[key] = check_value(key, value, r_hints[key], source)
        else:
            raise ConfigError(f"{source}: unknown key {key!r} (known keys: {', '.join(KNOWN_TOP_LEVEL)})")
    return out


# ----------------------------------------------------------------------------- layers
def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file (``OSError`` / ``TOMLDecodeError`` propagate to the CLI's error handler)."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            return _toml.load(f)
        except _toml.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc})") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except RecursionError:
            raise ConfigError(f"{path}: nested too deeply") from None


@dataclass
class ResolvedRun:
    """Everything a ``haba-distill`` run needs, decoupled from argparse."""

    distill: DistillConfig
    settings: RunSettings
    config_file: str | None
    merged: dict[str, Any]
    recipe: str = DEFAULT_RECIPE  # the recipe layer the run started from

    def eval_config(self) -> EvalConfig:
        d, s = self.distill, self.settings
        return EvalConfig(arch=s.eval_arch, runs=s.eval_runs, epochs=s.eval_epochs, lr=s.eval_lr,
                          learned_lr_on=s.eval_learned_lr_on, batch_size=s.eval_batch_size, dsa=s.eval_dsa,
                          net_width=d.net_width, net_depth=d.net_depth, net_norm=d.net_norm, seed=d.seed,
                          device=d.device)

    def as_dict(self) -> dict[str, Any]:
        return {"distill": self.distill.to_dict(), "run": asdict(self.settings), "eval": asdict(self.eval_config()),
                "config_file": self.config_file, "recipe": self.recipe}


def file_recipe(data: dict[str, Any], source: str) -> str | None:
    """Remove and return the ``recipe`` key of a configuration file (``None`` if it has none)."""
    value = data.pop("recipe", None)
    if value is not None and (not isinstance(value, str) or value not in RECIPES):
        raise ConfigError(f"{source}: recipe must be one of {', '.join(sorted(RECIPES))}, got {value!r}")
    return value


def resolve(config: str | None, assignments: list[str] | None, flags: dict[str, Any],
            recipe: str | None = None) -> ResolvedRun:
    """Merge defaults, a named ``recipe``, the ``config`` file (path or preset name), ``--set`` items and
    ``flags`` (later layers win).

    ``recipe`` ``None`` means the file's ``recipe`` key, else ``default_recipe_for`` the dataset. ``flags`` holds only
    the options given on the command line, keyed like the TOML file (``{"objective": "dm", "mtt": {...}}``).
    """
    layers: list[dict[str, Any]] = []
    config_file = None
    if config:
        path = resolve_config(config)
        config_file = str(path)
        data = load_toml(path)
        in_file = file_recipe(data, str(path))  # removed from the file's layer even when --recipe wins
        recipe = recipe or in_file
        layers.append(check_layer(data, str(path)))
    layers.append(check_layer(parse_set(assignments, snake_case=True), "--set"))
    layers.append(check_layer(flags, "command line"))
    dataset = "digits"
    for layer in layers:
        dataset = layer.get("dataset", dataset)
    recipe = recipe or default_recipe_for(dataset, digits_profile=True)
    layers.insert(0, check_layer(recipe_settings(recipe), f"recipe {recipe}"))
    merged = merge_layers(check_layer(profile_for(dataset), "built-in defaults"), *layers, exclusive=BUDGET_KEYS)
    distill_part = {k: v for k, v in merged.items() if k in _DISTILL_FIELDS}
    run_part = {k: v for k, v in merged.items() if k in _RUN_FIELDS}
    distill_cfg = DistillConfig.from_dict(distill_part).validate()
    if distill_cfg.ipc is None and distill_cfg.bpc is None:
        raise ConfigError("give a budget: ipc (images per class) or bpc (bases per class)")
    settings = RunSettings(**run_part)
    if settings.eval_runs < 0 or settings.eval_epochs < 0:
        raise ConfigError("eval_runs and eval_epochs must be >= 0 (eval_runs 0: no evaluation)")
    if settings.threads is not None and settings.threads < 1:
        raise ConfigError("threads must be >= 1")
    if settings.val_per_class < 0:
        raise ConfigError("val_per_class must be >= 0 (0: no validation split)")
    check_ranges(distill_cfg, settings)
    return ResolvedRun(distill_cfg, settings, config_file, merged, recipe)


# ----------------------------------------------------------------------------- ranges
_POSITIVE = ("lr_bases", "lr_adversary", "temperature", "time_limit_s")
_NON_NEGATIVE = ("lr_hallucinators", "lr_affine")  # 0 keeps the bank at its initialisation (recipe fixed-bank)
_AT_LEAST_ONE = ("ipc", "bpc", "net_width", "net_depth", "hallucinators_per_step", "bases_per_step")
_LIMITS = {"hallucinators": (0, 10_000), "net_width": (1, 65_536), "net_depth": (1, 64), "iterations": (0, 10**9),
           "seed": (0, 2**63 - 1), "ipc": (1, 10**6), "bpc": (1, 10**7), "checkpoint_every": (1, 10**9)}


def _walk_numbers(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in obj.items():
        if isinstance(value, dict):
            out += _walk_numbers(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((prefix + key, value))
    return out


def check_ranges(cfg: DistillConfig, settings: RunSettings) -> None:
    """:class:`ConfigError` for values of the right type but outside what a run can use (negative
    learning rates, seeds torch cannot take, non-finite numbers, zero batch sizes, ...)."""
    import math

    for key, value in _walk_numbers(cfg.to_dict()) + _walk_numbers(asdict(settings)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value}")
        if isinstance(value, int) and abs(value) > 2**63 - 1:
            raise ConfigError(f"{key} is out of range: {value}")
    for key in _POSITIVE:
        value = getattr(cfg, key)
        if value is not None and not value > 0:
            raise ConfigError(f"{key} must be > 0, got {value}")
    for key in _NON_NEGATIVE:
        value = getattr(cfg, key)
        if value is not None and not value >= 0:
            raise ConfigError(f"{key} must be >= 0 (0: kept at its initialisation), got {value}")
    for key in _AT_LEAST_ONE:
        value = getattr(cfg, key)
        if value is not None and value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    for key, (lo, hi) in _LIMITS.items():
        value = getattr(cfg, key)
        if value is not None and not lo <= value <= hi:
            raise ConfigError(f"{key} must be in {lo}..{hi}, got {value}")
    if not 0.0 <= cfg.momentum < 1.0:
        raise ConfigError(f"momentum must be in [0, 1), got {cfg.momentum}")
    for key in ("lambda_dd", "lambda_cos", "lambda_con", "lambda_task"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {getattr(cfg, key)}")
    if cfg.hallucinator.depth > 64:
        raise ConfigError(f"hallucinator.depth must be <= 64, got {cfg.hallucinator.depth}")
    if settings.eval_batch_size < 1:
        raise ConfigError(f"eval_batch_size must be >= 1, got {settings.eval_batch_size}")
    if settings.eval_lr is not None and not settings.eval_lr > 0:
        raise ConfigError(f"eval_lr must be > 0, got {settings.eval_lr}")
    if settings.eval_learned_lr_on not in LEARNED_LR_SCOPES:
        raise ConfigError(f"eval_learned_lr_on must be one of {', '.join(LEARNED_LR_SCOPES)}, "
                          f"got {settings.eval_learned_lr_on!r}")
