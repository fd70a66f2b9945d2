"""The federated apps' run configuration (Flower ``run_config``): keys, defaults, validation, client subset.

:data:`DEFAULT_RUN_CONFIG` is the one source of the keys and defaults; pyproject's ``[tool.flwr.app.config]``
must equal it plus the :data:`DEPRECATED_KEYS` as ``""`` (``tests/test_federated_payload.py`` checks it).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Mapping

from haba_core import ConfigError, canonical_dataset_name, default_recipe_for, recipe

logger = logging.getLogger("flwr.haba")
MODES = ("haba", "fedavg")
PARTITIONINGS = ("iid", "dirichlet")
DEFENCES = ("score", "none")

# The run configuration (Flower ``run_config``); pyproject's [tool.flwr.app.config] must equal it (tested).
DEFAULT_RUN_CONFIG: dict[str, Any] = {
    # what to run
    "mode": "haba",
    "num-server-rounds": 1,
    "dataset": "digits",
    "data-root": "",
    "train-limit": 0,
    "test-limit": 0,
    # a fixed validation split of this many training examples per class (haba_core.validation_split), kept
    # out of every client's partition and scored beside the test split each round (0 = none)
    "val-per-class": 0,
    "partitioning": "dirichlet",
    "alpha": 0.5,
    "partition-seed": 0,
    "seed": 0,
    "device": "cpu",
    "num-threads": 1,
    # orchestration
    "min-clients": 1,
    "min-available-clients": 1,
    "wait-for-clients-s": 120.0,
    "round-timeout-s": 3600.0,
    "fraction-evaluate": 1.0,
    "results-path": "",
    # model (shared by distillation networks, the global model and FedAvg)
    "network": "ConvNet",
    "net-width": 128,
    "net-depth": 3,
    "net-norm": "instancenorm",
    # HaBa distillation on the clients: a haba_core recipe ("" = the dataset's default, see
    # haba_core.distillation.recipes.default_recipe_for), then the keys below, then distill-overrides
    "recipe": "",
    "objective": "dm",
    "parameterization": "",
    "ipc": 2,
    "hallucinators": 5,
    "iterations": 200,
    "bases-learning-rate": 0.0,
    "batch-real": 256,
    "hallucinator-depth": 1,
    "hallucinator-channels": 0,
    "hallucinator-activation": "relu",
    "hallucinator-padding": "same",
    "hallucinator-init": "pca",
    "distill-overrides": "",
    "drop-empty-classes": True,
    "refine": True,
    # one hallucinator bank for all clients (federated.shared_bank): a bank round (one client), then
    # bases-only uploads through that bank; needs num-server-rounds >= 2 and a factorized recipe
    "shared-hallucinators": False,
    "max-payload-bytes": 50_000_000,
    # training the global model on the server (HaBa)
    "server-epochs": 300,
    "server-learning-rate": 0.01,
    "server-batch-size": 256,
    "server-dsa": True,
    # robust aggregation (federated.defence): "score" drops clients whose sanity score on a server-side
    # check set (defence-check-per-class test examples per class, held out of the central accuracy in
    # HaBa mode whatever the defence; 0 = none) is below defence-ratio x the round's median
    "defence": "score",
    "defence-check-per-class": 10,
    "defence-ratio": 0.5,
    # FedAvg local training (the names of Flower's quickstart apps)
    "local-epochs": 1,
    "learning-rate": 0.01,
    "batch-size": 32,
}

# Names used before Flower's quickstart naming (issue 17); still accepted, with a one-line warning. pyproject
# lists them with "" (= not given) because `flwr run --run-config` only takes keys the app's config declares.
DEPRECATED_KEYS: dict[str, str] = {"local-lr": "learning-rate", "local-batch-size": "batch-size",
                                   "server-lr": "server-learning-rate", "lr-bases": "bases-learning-rate"}
_WARNED: set[str] = set()

# Keys the server forwards to the clients in every instruction (the rest stays on the server).
CLIENT_KEYS = ("mode", "dataset", "data-root", "train-limit", "test-limit", "val-per-class", "partitioning", "alpha", "partition-seed", "seed", "device",
               "num-threads", "network", "net-width", "net-depth", "net-norm", "recipe", "objective", "parameterization",
               "ipc", "hallucinators", "iterations", "bases-learning-rate", "batch-real", "hallucinator-depth",
               "hallucinator-channels", "hallucinator-activation", "hallucinator-padding", "hallucinator-init", "distill-overrides",
               "drop-empty-classes", "refine", "shared-hallucinators", "num-server-rounds", "local-epochs", "learning-rate", "batch-size")

def _coerce(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if value.strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"run config {key!r} must be true|false, got {value!r}")
        return bool(value)
    try:
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"run config {key!r} must be a number, got {value!r}") from None
    if isinstance(value, (Mapping, list)):  # e.g. distill-overrides given as a parsed JSON object
        return json.dumps(value)
    return str(value)


def resolve_run_config(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid by each layer in turn (e.g. the Flower run config, then programmatic overrides).

    Unknown keys raise :class:`ConfigError`; values are coerced to the default's type. A deprecated name
    (:data:`DEPRECATED_KEYS`) sets its new key, over the new key's value in the same layer, with a warning
    once per process; ``""`` means "not given". ``recipe = ""`` becomes the dataset's default recipe.
    """
    cfg = dict(DEFAULT_RUN_CONFIG)
    for layer in layers:
        layer = dict(layer or {})
        renamed = {}
        for old, new in DEPRECATED_KEYS.items():
            value = layer.pop(old, "")
            if value == "" or value is None:
                continue
            if old not in _WARNED:
                _WARNED.add(old)
                logger.warning("run config %r is deprecated; use %r (Flower's quickstart naming)", old, new)
            renamed[new] = value
        layer.update(renamed)
        for key, value in layer.items():
            if key not in DEFAULT_RUN_CONFIG:
                raise ConfigError(f"unknown run config key {key!r}; known: {', '.join(sorted(DEFAULT_RUN_CONFIG))}")
            cfg[key] = _coerce(key, value, DEFAULT_RUN_CONFIG[key])
    if not cfg["recipe"].strip():
        cfg["recipe"] = default_recipe_for(cfg["dataset"])
    check_run_config(cfg)
    return cfg


def known_keys(run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The items of a Flower run config this app reads (its keys and their deprecated names)."""
    return {k: v for k, v in run_config.items() if k in DEFAULT_RUN_CONFIG or k in DEPRECATED_KEYS}


def check_run_config(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` (or ``UnknownNameError``) for an unusable configuration."""
    if cfg["mode"] not in MODES:
        raise ConfigError(f"unknown mode {cfg['mode']!r}; use haba or fedavg")
    if cfg["partitioning"] not in PARTITIONINGS:
        raise ConfigError(f"unknown partitioning {cfg['partitioning']!r}; use iid or dirichlet")
    if not cfg["alpha"] > 0 or not math.isfinite(cfg["alpha"]):
        raise ConfigError(f"alpha must be a positive number, got {cfg['alpha']}")
    if cfg["num-server-rounds"] < 1:
        raise ConfigError("num-server-rounds must be >= 1")
    if cfg["min-clients"] < 1 or cfg["min-available-clients"] < 1:
        raise ConfigError("min-clients and min-available-clients must be >= 1")
    if cfg["shared-hallucinators"] and (cfg["mode"] != "haba" or cfg["num-server-rounds"] < 2):
        raise ConfigError("shared-hallucinators needs mode haba and num-server-rounds >= 2 (a bank round, then "
                          "bases-only rounds)")
    if cfg["max-payload-bytes"] < 1:
        raise ConfigError("max-payload-bytes must be >= 1")
    if cfg["train-limit"] < 0 or cfg["test-limit"] < 0:
        raise ConfigError("train-limit and test-limit must be >= 0 (0 = the whole split)")
    if cfg["val-per-class"] < 0:
        raise ConfigError("val-per-class must be >= 0 (0 = no validation split)")
    if not 0.0 <= cfg["fraction-evaluate"] <= 1.0:
        raise ConfigError("fraction-evaluate must be in [0, 1]")
    if cfg["defence"] not in DEFENCES:
        raise ConfigError(f"unknown defence {cfg['defence']!r}; use score or none")
    if cfg["defence-check-per-class"] < (1 if cfg["defence"] == "score" else 0) or not 0.0 <= cfg["defence-ratio"] < 1.0:
        raise ConfigError("defence-check-per-class must be >= 1 with defence score (0 = no check set) and "
                          "defence-ratio in [0, 1)")
    canonical_dataset_name(cfg["dataset"])
    recipe(cfg["recipe"] or default_recipe_for(cfg["dataset"]))  # UnknownNameError for a name that is not a recipe


def client_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the run config a client needs (sent in each instruction's ConfigRecord)."""
    return {k: cfg[k] for k in CLIENT_KEYS}
