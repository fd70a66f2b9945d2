"""Part 2: one downstream training epoch with online composition vs plain tensors and materialized images."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from haba_core import EvalConfig, FactorizedDataset, ImageDataset, distill
from haba_core.evaluate import build_eval_network, train_on_synthetic
from haba_core.objectives import seeded_network

from .. import harness as H
from .common import base_config, describe_fd, random_dataset
from .settings import Settings

class Materialized:
    """All |H|×|B| hallucinations composed once; each epoch picks one per basis by indexing."""

    def __init__(self, fd: FactorizedDataset):
        self.images, self.labels = fd.materialize()
        self.num_bases = fd.synthetic.num_bases
        self.count = max(1, fd.num_hallucinators)
        self.num_hallucinators = 0  # train_on_synthetic's contrastive branch is not used

    def sample_epoch(self, generator: torch.Generator | None = None, per_basis: int = 1):
        if per_basis != 1:
            raise ValueError("the materialized variant draws one hallucination per basis")
        dev = self.images.device
        h = torch.randint(self.count, (self.num_bases,), generator=generator).to(dev)
        idx = h * self.num_bases + torch.arange(self.num_bases, device=dev)
        return self.images[idx], self.labels[idx]


def synthetic_pair(train: ImageDataset, s: Settings, device: torch.device, ipc: int, seed: int):
    """A haba set at ``ipc`` and a plain set with as many images as the haba set has bases (no training)."""
    haba = distill(train, base_config(s, device, objective="dm", parameterization="haba", ipc=ipc, seed=seed,
                                      iterations=0))
    bpc = haba.synthetic.num_bases // haba.num_classes
    plain = distill(train, base_config(s, device, objective="dm", parameterization="plain", bpc=bpc, ipc=None,
                                       seed=seed, iterations=0))
    return haba, plain


def time_epochs(data: Any, shape, num_classes: int, s: Settings, device: torch.device, seed: int) -> dict:
    cfg = EvalConfig(epochs=1, net_width=s.net_width, net_depth=s.net_depth, device=str(device), seed=seed)
    gen = torch.Generator().manual_seed(30_000 + seed)
    net = seeded_network(lambda: build_eval_network(cfg, shape, num_classes), gen, device)
    train_on_synthetic(net, data, cfg, gen, 0.01)          # warm-up epoch
    timed = replace(cfg, epochs=s.eval_epochs)
    mon = H.MemoryMonitor(device).start()
    with H.Timer(device) as t:
        train_on_synthetic(net, data, timed, gen, 0.01)
    return {"epoch_s": t.seconds / s.eval_epochs, "peak": mon.stop(), "load": t.load}


def time_sample_epoch(data: Any, device: torch.device, reps: int, seed: int) -> float:
    gen = torch.Generator().manual_seed(40_000 + seed)
    data.sample_epoch(gen)
    with H.Timer(device) as t:
        for _ in range(reps):
            data.sample_epoch(gen)
    return t.seconds / reps


def part_downstream(s: Settings, device: torch.device, seeds: list[int], log) -> list[dict]:
    rows = []
    variants = ("plain", "haba-online", "haba-materialized")
    for shape_name, ipcs in s.eval_ipcs.items():
        shape = s.shapes[shape_name]
        for ipc in ipcs:
            acc = {v: {"epoch": [], "peak": [], "compose": [], "loads": []} for v in variants}
            ratios = {v: [] for v in variants}
            materialize_s = []
            info = {}
            for seed in seeds:
                train = random_dataset(shape, min(s.per_class, 64), seed, name=shape_name)
                haba, plain = synthetic_pair(train, s, device, ipc, seed)
                with H.Timer(device) as tm:
                    mat = Materialized(haba)
                materialize_s.append(tm.seconds)
                data = {"plain": plain, "haba-online": haba, "haba-materialized": mat}
                info = {"plain": describe_fd(plain), "haba-online": describe_fd(haba),
                        "haba-materialized": describe_fd(haba)}
                info["plain"]["images"] = plain.synthetic.num_bases
                info["haba-online"]["images"] = haba.synthetic.num_bases
                info["haba-materialized"]["images"] = haba.synthetic.num_bases
                per_seed = {}
                for v in variants:
                    r = time_epochs(data[v], shape, 10, s, device, seed)
                    acc[v]["epoch"].append(r["epoch_s"])
                    acc[v]["peak"].append(r["peak"])
                    acc[v]["loads"].append(r["load"])
                    acc[v]["compose"].append(time_sample_epoch(data[v], device, 5, seed))
                    per_seed[v] = r["epoch_s"]
                    log(f"[2] {shape_name} ipc{ipc} {v} seed{seed}: {1000 * r['epoch_s']:.0f} ms/epoch, "
                        f"peak {H.fmt_bytes(r['peak'])}, load {H.load_average()[0]}")
                for v in variants:
                    ratios[v].append(per_seed[v] / per_seed["plain"])
            for v in variants:
                ratio = H.summarize(ratios[v], digits=3)
                peak_m, peak_s = H.mean_std(acc[v]["peak"])
                comp_m, comp_s = H.mean_std([1000 * x for x in acc[v]["compose"]])
                row = {"part": "train_epoch", "shape": shape_name, "ipc": ipc, "variant": v,
                       "images_per_epoch": info[v]["images"], "bpc": info[v]["bpc"],
                       "hallucinators": info[v]["hallucinators"], "stored_bytes": info[v]["stored_bytes"],
                       "ipc_equivalent": info[v]["ipc_equivalent"], "unit": "ms/epoch",
                       **H.summarize(acc[v]["epoch"], scale=1000.0, loads=acc[v]["loads"]),
                       "sample_epoch_ms": comp_m, "sample_epoch_ms_std": comp_s,
                       "peak_bytes": peak_m, "peak_bytes_std": peak_s,
                       "ratio_vs_plain": ratio["mean"], "ratio_vs_plain_std": ratio["std"],
                       "ratio_value": ratio["value"]}
                if v == "haba-materialized":
                    m, sd = H.mean_std([1000 * x for x in materialize_s])
                    row["materialize_once_ms"] = m
                    row["materialize_once_ms_std"] = sd
                    row["note"] = f"+ {m:.1f} ms once to compose all |H|·|B| images"
                rows.append(row)
    return rows
