"""The :class:`haba_core.DistillConfig` a federated run config describes (recipe, explicit keys, overrides)."""

from __future__ import annotations

import json
from typing import Any, Mapping

from haba_core import ConfigError, DistillConfig, default_recipe_for, merge_layers, recipe


def distill_config(cfg: Mapping[str, Any], seed: int | None = None) -> DistillConfig:
    """The :class:`haba_core.DistillConfig` described by a run config (no ZCA in federated mode).

    Layers: the ``recipe`` (``""``: the dataset's default, :func:`default_recipe_for`), then the explicit keys (``parameterization``
    ``""`` keeps the recipe's), then ``distill-overrides``.
    """
    d = merge_layers(recipe(cfg["recipe"] or default_recipe_for(cfg["dataset"])), {
        "objective": cfg["objective"], "ipc": int(cfg["ipc"]),
        "hallucinators": int(cfg["hallucinators"]), "iterations": int(cfg["iterations"]),
        "network": cfg["network"], "net_width": int(cfg["net-width"]), "net_depth": int(cfg["net-depth"]),
        "net_norm": cfg["net-norm"], "zca": False, "device": cfg["device"],
        "seed": int(cfg["seed"] if seed is None else seed),
        "hallucinator": {"depth": int(cfg["hallucinator-depth"]),
                         "channels": int(cfg["hallucinator-channels"]) or None,
                         "activation": cfg["hallucinator-activation"], "padding": cfg["hallucinator-padding"],
                         "init": cfg["hallucinator-init"]},
        "dm": {"batch_real": int(cfg["batch-real"])},
    })
    if cfg["parameterization"]:
        d["parameterization"] = cfg["parameterization"]
    if cfg["bases-learning-rate"] and float(cfg["bases-learning-rate"]) > 0:
        d["lr_bases"] = float(cfg["bases-learning-rate"])
    if cfg.get("distill-overrides"):
        try:
            extra = json.loads(cfg["distill-overrides"])
        except json.JSONDecodeError as exc:
            raise ConfigError(f"distill-overrides is not valid JSON: {exc}") from None
        if not isinstance(extra, dict):
            raise ConfigError("distill-overrides must be a JSON object")
        d = merge_layers(d, extra)
    if d.get("zca"):
        raise ConfigError("ZCA whitening is not available in federated mode (each client would whiten differently)")
    for forbidden in ("checkpoint_dir",):
        d.pop(forbidden, None)
    if "bpc" in d and d["bpc"] is not None:
        d["ipc"] = None
    cfg_obj = DistillConfig.from_dict(d)
    return cfg_obj.validate()
