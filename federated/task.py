"""Shared pieces of the federated apps: run configuration, model, data partitioning, payload conversion.

Everything here depends only on ``haba_core``, ``torch`` and ``numpy`` (plus ``flwr`` record types in the
conversion helpers), so the ClientApp, the ServerApp and the runner agree on one definition of
"the model", "partition ``i`` of ``n``" and "the expected payload".

Normalisation: every party uses the dataset's own per-channel mean/std (``ImageDataset.mean/std``, the
statistics of the full train split, which every partition inherits). ZCA whitening is refused in
federated mode because each client would fit different statistics.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from haba_core import (ConfigError, DistillConfig, FactorizedDataset, HallucinatorConfig, ImageDataset, Preprocessor,
                       load_dataset, plan_budget, recipe)
from haba_core.data.registry import canonical_name
from haba_core.distillation import network_factory
from haba_core.distillation.recipes import default_recipe_for
from haba_core.evaluate import test_accuracy

logger = logging.getLogger("flwr.haba")
MODES = ("haba", "fedavg")
PARTITIONINGS = ("iid", "dirichlet")
DEFENCES = ("score", "none")

# The run configuration (Flower ``run_config``); pyproject's [tool.flwr.app.config] mirrors these defaults.
DEFAULT_RUN_CONFIG: dict[str, Any] = {
    # what to run
    "mode": "haba",
    "num-server-rounds": 1,
    "dataset": "digits",
    "data-root": "",
    "train-limit": 0,
    "test-limit": 0,
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
CLIENT_KEYS = ("mode", "dataset", "data-root", "train-limit", "test-limit", "partitioning", "alpha", "partition-seed", "seed", "device",
               "num-threads", "network", "net-width", "net-depth", "net-norm", "recipe", "objective", "parameterization",
               "ipc", "hallucinators", "iterations", "bases-learning-rate", "batch-real", "hallucinator-depth",
               "hallucinator-channels", "hallucinator-activation", "hallucinator-padding", "hallucinator-init", "distill-overrides",
               "drop-empty-classes", "refine", "num-server-rounds", "local-epochs", "learning-rate", "batch-size")


# ---------------------------------------------------------------------------------------------- config
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
    if cfg["max-payload-bytes"] < 1:
        raise ConfigError("max-payload-bytes must be >= 1")
    if cfg["train-limit"] < 0 or cfg["test-limit"] < 0:
        raise ConfigError("train-limit and test-limit must be >= 0 (0 = the whole split)")
    if not 0.0 <= cfg["fraction-evaluate"] <= 1.0:
        raise ConfigError("fraction-evaluate must be in [0, 1]")
    if cfg["defence"] not in DEFENCES:
        raise ConfigError(f"unknown defence {cfg['defence']!r}; use score or none")
    if cfg["defence-check-per-class"] < (1 if cfg["defence"] == "score" else 0) or not 0.0 <= cfg["defence-ratio"] < 1.0:
        raise ConfigError("defence-check-per-class must be >= 1 with defence score (0 = no check set) and "
                          "defence-ratio in [0, 1)")
    canonical_name(cfg["dataset"])
    recipe(cfg["recipe"] or default_recipe_for(cfg["dataset"]))  # UnknownNameError for a name that is not a recipe


def client_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the run config a client needs (sent in each instruction's ConfigRecord)."""
    return {k: cfg[k] for k in CLIENT_KEYS}


def distill_config(cfg: Mapping[str, Any], seed: int | None = None) -> DistillConfig:
    """The :class:`haba_core.DistillConfig` described by a run config (no ZCA in federated mode).

    Layers: the ``recipe`` (``""``: the dataset's default, :func:`default_recipe_for`), then the explicit keys (``parameterization``
    ``""`` keeps the recipe's), then ``distill-overrides``.
    """
    d: dict[str, Any] = recipe(cfg["recipe"] or default_recipe_for(cfg["dataset"]))
    _deep_update(d, {
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
        _deep_update(d, extra)
    if d.get("zca"):
        raise ConfigError("ZCA whitening is not available in federated mode (each client would whiten differently)")
    for forbidden in ("checkpoint_dir",):
        d.pop(forbidden, None)
    if "bpc" in d and d["bpc"] is not None:
        d["ipc"] = None
    cfg_obj = DistillConfig.from_dict(d)
    return cfg_obj.validate()


def _deep_update(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


# ---------------------------------------------------------------------------------------------- data
_DATA_CACHE: dict[tuple[str, str, str], ImageDataset] = {}
_DATA_LOCK = threading.Lock()


def load_split(dataset: str, data_root: str | None, split: str) -> ImageDataset:
    """Load (and cache per process) one split; ``data_root`` ``""``/``None`` means the default root."""
    root = data_root or None
    key = (canonical_name(dataset), str(root), split)
    with _DATA_LOCK:
        if key not in _DATA_CACHE:
            _DATA_CACHE[key] = load_dataset(dataset, root=root, split=split)
        return _DATA_CACHE[key]


def load_run_split(cfg: Mapping[str, Any], split: str) -> ImageDataset:
    """The configured dataset's ``split``, cut to ``train-limit`` / ``test-limit`` examples (seeded, 0 = all)."""
    data = load_split(cfg["dataset"], cfg["data-root"], split)
    limit = int(cfg["train-limit" if split == "train" else "test-limit"])
    if 0 < limit < len(data):
        pick = torch.from_numpy(np.random.default_rng(12345).permutation(len(data))[:limit]).sort().values
        data = data.subset(pick)
    return data


def dirichlet_proportions(num_classes: int, num_partitions: int, alpha: float, seed: int) -> np.ndarray:
    """Class-by-partition matrix: row ``c`` is Dirichlet(α·1) over partitions (seeded)."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(num_partitions, float(alpha)), size=num_classes)


def partition_indices(labels: Tensor, num_partitions: int, partitioning: str = "iid", alpha: float = 0.5,
                      seed: int = 0, num_classes: int | None = None, min_size: int = 1) -> list[Tensor]:
    """Split example indices into ``num_partitions`` disjoint, exhaustive parts.

    ``iid``: a seeded shuffle cut into near-equal parts. ``dirichlet``: for each class, its examples are
    divided between partitions in proportions drawn from Dirichlet(α) (small α → few classes per
    partition). Draws are repeated (new seeds derived from ``seed``) until every partition holds at
    least ``min_size`` examples; after 100 attempts the smallest partitions take examples from the
    largest. The same ``(seed, α, n)`` gives the same class proportions for any label vector, so the
    train and test splits are partitioned alike.

    Not ``flwr-datasets``' ``IidPartitioner`` / ``DirichletPartitioner``: that package is not a dependency
    (it brings Hugging Face ``datasets`` and ``pyarrow``), it partitions Hugging Face datasets rather than
    the tensors of ``haba_core.load_dataset`` (the embedded digits, MNIST/CIFAR from their release files,
    imagefolder archives), and it partitions one split at a time, whereas each node's test part here
    follows its train part's class proportions.
    """
    if num_partitions < 1:
        raise ConfigError("the number of partitions must be >= 1")
    labels = labels.detach().cpu().to(torch.int64)
    n = int(labels.numel())
    if n < num_partitions * min_size:
        raise ConfigError(f"{n} examples cannot fill {num_partitions} partitions of at least {min_size}")
    if partitioning == "iid":
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(n)).to(torch.int64)
        return [p.sort().values for p in torch.tensor_split(perm, num_partitions)]
    if partitioning != "dirichlet":
        raise ConfigError(f"unknown partitioning {partitioning!r}; use iid or dirichlet")
    if not alpha > 0:
        raise ConfigError(f"alpha must be > 0, got {alpha}")
    k = int(num_classes if num_classes is not None else (int(labels.max()) + 1 if n else 0))
    parts: list[list[np.ndarray]] = []
    for attempt in range(100):
        parts = _dirichlet_split(labels.numpy(), k, num_partitions, alpha, seed + 7919 * attempt)
        if min(sum(len(a) for a in p) for p in parts) >= min_size:
            break
    else:
        parts = _rebalance(parts, min_size)
    return [torch.from_numpy(np.sort(np.concatenate(p) if p else np.zeros(0, np.int64))).to(torch.int64)
            for p in parts]


def _dirichlet_split(labels: np.ndarray, num_classes: int, num_partitions: int, alpha: float,
                     seed: int) -> list[list[np.ndarray]]:
    props = dirichlet_proportions(num_classes, num_partitions, alpha, seed)
    rng = np.random.default_rng(seed + 1)
    parts: list[list[np.ndarray]] = [[] for _ in range(num_partitions)]
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        cuts = (np.cumsum(props[c])[:-1] * len(idx)).round().astype(int)
        for p, chunk in enumerate(np.split(idx, cuts)):
            parts[p].append(chunk.astype(np.int64))
    return parts


def _rebalance(parts: list[list[np.ndarray]], min_size: int) -> list[list[np.ndarray]]:
    flat = [np.concatenate(p) if p else np.zeros(0, np.int64) for p in parts]
    for i in range(len(flat)):
        while len(flat[i]) < min_size:
            j = int(np.argmax([len(f) for f in flat]))
            flat[i], flat[j] = np.append(flat[i], flat[j][-1]), flat[j][:-1]
    return [[f] for f in flat]


def load_partition(cfg: Mapping[str, Any], partition_id: int, num_partitions: int,
                   split: str = "train") -> ImageDataset:
    """Partition ``partition_id`` of ``num_partitions`` of the configured dataset's ``split``."""
    if not 0 <= partition_id < num_partitions:
        raise ConfigError(f"partition-id {partition_id} is outside 0..{num_partitions - 1}")
    data = load_run_split(cfg, split)
    parts = partition_indices(data.labels, num_partitions, cfg["partitioning"], float(cfg["alpha"]),
                              int(cfg["partition-seed"]), data.num_classes, min_size=1 if split == "train" else 0)
    return data.subset(parts[partition_id])


def node_partition(node_config: Mapping[str, Any]) -> tuple[int, int]:
    """``(partition-id, num-partitions)`` from a node config (both required)."""
    try:
        return int(node_config["partition-id"]), int(node_config["num-partitions"])
    except KeyError as exc:
        raise ConfigError(f"the node config lacks {exc}; start the SuperNode with "
                          "--node-config 'partition-id=<i> num-partitions=<n>'") from None
    except (TypeError, ValueError):
        raise ConfigError("partition-id and num-partitions in the node config must be integers") from None


def resolve_device(name: str) -> torch.device:
    """``cpu`` / ``cuda[:n]`` / ``auto`` (CUDA when available) as a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def set_threads(cfg: Mapping[str, Any]) -> None:
    n = int(cfg.get("num-threads", 1) or 0)
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------- model
def build_model(cfg: Mapping[str, Any], image_shape: tuple[int, int, int], num_classes: int,
                seed: int | None = None) -> nn.Module:
    """The global model: exactly the distillation network of ``distill_config(cfg)``, seeded."""
    dcfg = distill_config(cfg)
    make = network_factory(dcfg, tuple(image_shape), num_classes, torch.device("cpu"))
    return make(torch.Generator().manual_seed(int(cfg["seed"] if seed is None else seed)))


def state_dict_cpu(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def evaluate_model(model: nn.Module, data: ImageDataset, preprocessor: Preprocessor,
                   device: str | torch.device = "cpu") -> tuple[float, float]:
    """(accuracy %, mean cross-entropy) of ``model`` on ``data`` normalised by ``preprocessor``."""
    if len(data) == 0:
        return 0.0, 0.0
    model = model.to(device)
    x = preprocessor(data.images.to(device))
    y = data.labels.to(device)
    acc = test_accuracy(model, x, y)
    with torch.no_grad():
        loss = 0.0
        for start in range(0, x.shape[0], 1024):
            out = model(x[start:start + 1024])
            loss += float(torch.nn.functional.cross_entropy(out, y[start:start + 1024], reduction="sum"))
    return acc, loss / x.shape[0]


def preprocessor_for(data: ImageDataset) -> Preprocessor:
    """Per-channel normalisation with the dataset's statistics (never ZCA in federated mode)."""
    return Preprocessor(tuple(data.mean), tuple(data.std))


# ---------------------------------------------------------------------------------------------- expectations
@dataclass(frozen=True)
class PayloadExpectation:
    """What a valid client payload must look like, derived from the server's run config and dataset."""

    image_shape: tuple[int, int, int]
    num_classes: int
    parameterization: str
    basis_shape: tuple[int, int, int]
    bpc: int
    num_hallucinators: int
    per_class_hallucinators: bool
    hallucinator: HallucinatorConfig
    max_bytes: int
    learned_lr: bool
    value_span: float = math.inf
    """Largest ``|x|`` of a normalised real image (from the dataset's mean/std); bounds uploaded values."""


def normalised_span(preprocessor: Preprocessor) -> float:
    """Largest ``|x|`` of a pixel in [0, 1] after per-channel normalisation by ``preprocessor``."""
    return max(max(abs((0.0 - m) / s), abs((1.0 - m) / s)) for m, s in zip(preprocessor.mean, preprocessor.std))


def expected_payload(cfg: Mapping[str, Any], image_shape: tuple[int, int, int], num_classes: int,
                     preprocessor: Preprocessor | None = None) -> PayloadExpectation:
    """The plan every client's distillation follows (same call as ``haba_core.distill``).

    With ``preprocessor`` (the server's normalisation) uploaded values are also bounded by its value span.
    """
    dcfg = distill_config(cfg)
    plan = plan_budget(image_shape=tuple(image_shape), num_classes=num_classes, parameterization=dcfg.parameterization,
                       ipc=dcfg.ipc if dcfg.bpc is None else None, bpc=dcfg.bpc, hallucinators=dcfg.hallucinators,
                       hallucinator=dcfg.hallucinator, basis_channels=dcfg.basis_channels, downsample=dcfg.downsample,
                       per_class_hallucinators=dcfg.per_class_hallucinators, rule=dcfg.budget_rule,
                       extra=1 if dcfg.objective == "mtt" else 0)
    return PayloadExpectation(tuple(int(s) for s in image_shape), int(num_classes), dcfg.parameterization,
                              tuple(int(s) for s in plan.basis_shape), int(plan.bpc), int(plan.num_hallucinators),
                              bool(plan.per_class_hallucinators), dcfg.hallucinator, int(cfg["max-payload-bytes"]),
                              dcfg.objective == "mtt",
                              normalised_span(preprocessor) if preprocessor is not None else math.inf)


# ---------------------------------------------------------------------------------------------- conversion
def drop_classes(result: FactorizedDataset, keep: Tensor) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors + metadata of ``result`` keeping only bases whose label is in ``keep`` (a bool mask per class)."""
    tensors = dict(result.tensors())
    meta = result.describe()
    mask = keep.to(tensors["labels"].device)[tensors["labels"]]
    if bool(mask.all()):
        return tensors, meta
    tensors["bases"] = tensors["bases"][mask].contiguous()
    tensors["labels"] = tensors["labels"][mask].contiguous()
    meta["num_bases"] = int(mask.sum())
    meta.pop("storage", None)
    return tensors, meta


def to_factorized(tensors: Mapping[str, Tensor], meta: Mapping[str, Any], preprocessor: Preprocessor) -> FactorizedDataset:
    """``FactorizedDataset.from_tensors`` with the server's own normalisation (client mean/std are ignored)."""
    meta = dict(meta)
    meta["mean"], meta["std"] = list(preprocessor.mean), list(preprocessor.std)
    meta["zca"] = None
    result = FactorizedDataset.from_tensors(dict(tensors), meta)
    result.preprocessor = Preprocessor(tuple(preprocessor.mean), tuple(preprocessor.std))
    return result
