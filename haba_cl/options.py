"""Settings of a ``haba-distill`` run: built-in defaults < recipe < TOML file < ``--set`` < command-line flags.

A configuration is a nested dict whose keys are :class:`haba_core.DistillConfig` fields (nested tables
``hallucinator``, ``dm``, ``dc``, ``mtt``) plus the run-level keys of :class:`RunSettings` (dataset,
data root, evaluation, output). The recipe (a :data:`haba_core.RECIPES` name) comes from ``--recipe``, else
the file's top-level ``recipe`` key (the shipped presets name one: ``"paper"``, or ``"paper-pca"`` / ``"modest"``
for some ablations), else :func:`default_recipe`
(``modest``; ``paper`` on the 8×8 digits). It is checked key by key — an unknown key or a value of the wrong type
raises :class:`haba_core.ConfigError` naming the key and where it came from — and then turned into a
``DistillConfig`` and an ``EvalConfig``. The argparse namespace never reaches ``haba_core``.
"""

from __future__ import annotations

import copy
import types
import typing
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from haba_core import RECIPES, ConfigError, DistillConfig, EvalConfig
from haba_core.distillation.recipes import DEFAULT_RECIPE, SMALL_IMAGE_DATASETS, default_recipe_for  # noqa: F401
from haba_core import recipe as recipe_settings

from .cli_errors import _toml
from .presets import resolve_config

# Keys a preset may carry for documentation only.
DOC_KEYS = ("description",)

# The recipe a run starts from when neither --recipe nor the configuration file names one: one rule for every
# entry point, in haba_core (haba-distill, haba-cl, haba-fl and the Flower app's ``recipe = ""``). ``modest`` was
# measured best at CPU-minutes budgets (BENCHMARKS.md, "10 minutes per run": ahead of plain distillation at equal
# bytes in all 8 DM/DC x MNIST/CIFAR-10 x IPC-2/11 cells); ``paper`` reproduces the paper's settings. On the
# embedded 8x8 digits modest's 2x down-sampled bases are 4x4 pixels: there it scored 56-62 % against 75-81 % for
# the paper's settings with the digits profile below (identity-initialised hallucinators at lr 0.01; IPC 3,
# 300 DM iterations, seeds 0-2, 5 evaluation runs; docs/cli.md). Entry points without that profile (haba-cl,
# haba-fl) start from ``paper-pca`` there: the paper's random init with eta_H = eta_B blows the composed images
# up within a few hundred DM iterations on digits (a federated server rightly rejects them).


def default_recipe(dataset: str | None, *, digits_profile: bool = False) -> str:
    """:func:`haba_core.distillation.recipes.default_recipe_for` (kept for the CLIs' callers)."""
    return default_recipe_for(dataset, digits_profile=digits_profile)


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
    eval_batch_size: int = 256
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


# ----------------------------------------------------------------------------- type checking
_DISTILL_FIELDS = {f.name for f in fields(DistillConfig)}
_RUN_FIELDS = {f.name for f in fields(RunSettings)}
KNOWN_TOP_LEVEL = sorted(_DISTILL_FIELDS | _RUN_FIELDS)


def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _allowed(hint: Any) -> tuple[set[type], type | None]:
    """Python types a TOML value may have for ``hint``, and the nested dataclass if there is one."""
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    args = typing.get_args(hint) if union else (hint,)
    allowed: set[type] = set()
    nested = None
    for a in args:
        if is_dataclass(a):
            nested = a
        elif a is type(None):
            allowed.add(type(None))
        elif a in (bool, int, float, str):
            allowed.add(a)
    return allowed, nested


def _type_name(allowed: set[type]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "none"}
    return " or ".join(names[t] for t in (bool, int, float, str, type(None)) if t in allowed)


def _check_value(key: str, value: Any, hint: Any, source: str) -> Any:
    allowed, nested = _allowed(hint)
    if nested is not None and isinstance(value, dict):
        return check_table(value, nested, source, prefix=f"{key}.")
    if nested is not None:
        raise ConfigError(f"{source}: {key} must be a table of {', '.join(f.name for f in fields(nested))}")
    if value is None and type(None) in allowed:
        return None
    if isinstance(value, bool):
        if bool in allowed:
            return value
    elif isinstance(value, int):
        if int in allowed:
            return value
        if float in allowed:
            return float(value)
    elif isinstance(value, float):
        if float in allowed:
            return value
    elif isinstance(value, str) and str in allowed:
        return value
    raise ConfigError(f"{source}: {key} must be {_type_name(allowed)}, got {value!r}")


def check_table(data: dict[str, Any], kind: type, source: str, prefix: str = "") -> dict[str, Any]:
    """Check every key of ``data`` against the dataclass ``kind``; unknown keys and wrong types raise."""
    hints = _hints(kind)
    out = {}
    for key, value in data.items():
        if key not in hints:
            known = ", ".join(sorted(hints))
            where = f" in {prefix[:-1]}" if prefix else ""
            raise ConfigError(f"{source}: unknown key {(prefix + key)!r} (known keys{where}: {known})")
        out[key] = _check_value(prefix + key, value, hints[key], source)
    return out


def check_layer(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Check one configuration layer (file, ``--set`` or flags): DistillConfig keys plus run-level keys."""
    d_hints, r_hints = _hints(DistillConfig), _hints(RunSettings)
    out = {}
    for key, value in data.items():
        if key in d_hints:
            out[key] = _check_value(key, value, d_hints[key], source)
        elif key in r_hints:
            out[key] = _check_value(key, value, r_hints[key], source)
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


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``["mtt.syn_steps=2", "zca=true"]`` → nested dict; values are TOML literals, else plain strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. mtt.syn_steps=2), got {item!r}")
        try:
            value = _toml.loads(f"v = {raw.strip()}")["v"]
        except _toml.TOMLDecodeError:
            value = raw.strip()
        if isinstance(value, str) and value.lower() in ("none", "null"):
            value = None
        node = out
        parts = key.replace("-", "_").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a table")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` over ``base`` (tables merge key by key). Setting ``ipc`` drops a lower ``bpc`` and vice versa."""
    out = copy.deepcopy(base)
    if "ipc" in layer and "bpc" not in layer and layer["ipc"] is not None:
        out["bpc"] = None
    if "bpc" in layer and "ipc" not in layer and layer["bpc"] is not None:
        out["ipc"] = None
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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
                          batch_size=s.eval_batch_size, dsa=s.eval_dsa, net_width=d.net_width,
                          net_depth=d.net_depth, net_norm=d.net_norm, seed=d.seed, device=d.device)

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

    ``recipe`` ``None`` means the file's ``recipe`` key, else :func:`default_recipe` of the dataset. ``flags`` holds only
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
    layers.append(check_layer(parse_assignments(assignments), "--set"))
    layers.append(check_layer(flags, "command line"))
    dataset = "digits"
    for layer in layers:
        dataset = layer.get("dataset", dataset)
    recipe = recipe or default_recipe(dataset, digits_profile=True)
    layers.insert(0, check_layer(recipe_settings(recipe), f"recipe {recipe}"))
    merged: dict[str, Any] = check_layer(profile_for(dataset), "built-in defaults")
    for layer in layers:
        merged = deep_merge(merged, layer)
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
    check_ranges(distill_cfg, settings)
    return ResolvedRun(distill_cfg, settings, config_file, merged, recipe)


# ----------------------------------------------------------------------------- ranges
_POSITIVE = ("lr_bases", "lr_hallucinators", "lr_affine", "lr_adversary", "temperature", "time_limit_s")
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
