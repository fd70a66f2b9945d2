"""Part 5: composition micro-benchmark (batched no-grad ``sample_epoch`` vs one sample at a time)."""

from __future__ import annotations

import torch

from haba_core import distill

from .. import harness as H
from .common import base_config, describe_fd, random_dataset
from .settings import Settings

def part_compose(s: Settings, device: torch.device, seeds: list[int], log) -> list[dict]:
    rows = []
    for shape_name in s.shapes:
        shape = s.shapes[shape_name]
        for ipc in s.compose_ipcs:
            res = {"batched": [], "loop_grad": [], "getitem": []}
            loads, info = [], {}
            for seed in seeds:
                train = random_dataset(shape, 20, seed, name=shape_name)
                fd = distill(train, base_config(s, device, objective="dm", parameterization="haba", ipc=ipc,
                                                seed=seed, iterations=0))
                info = {**describe_fd(fd), "images": fd.synthetic.num_bases}
                syn = fd.synthetic
                gen = torch.Generator().manual_seed(seed)
                nb = syn.num_bases
                syn.sample_epoch(gen)
                with H.Timer(device) as t:
                    for _ in range(s.compose_batched_reps):
                        syn.sample_epoch(gen)
                res["batched"].append(t.seconds / s.compose_batched_reps)
                # per sample with gradients on (as a naive training loop would compose)
                for p in syn.parameters():
                    p.requires_grad_(True)
                idx = torch.arange(nb, device=syn.bases.device)
                with H.Timer(device) as t:
                    for _ in range(s.compose_loop_reps):
                        h = torch.randint(syn.num_hallucinators, (nb,), generator=gen).to(idx.device)
                        out = torch.cat([syn.compose(idx[i:i + 1], h[i:i + 1]) for i in range(nb)])
                        del out
                res["loop_grad"].append(t.seconds / s.compose_loop_reps)
                for p in syn.parameters():
                    p.requires_grad_(False)
                # per sample through the torch Dataset protocol (no grad), what a DataLoader would do
                with H.Timer(device) as t:
                    for _ in range(s.compose_loop_reps):
                        torch.stack([fd[i][0] for i in range(nb)])
                res["getitem"].append(t.seconds / s.compose_loop_reps)
                loads.append(t.load)
                log(f"[5] {shape_name} ipc{ipc} seed{seed}: batched {1000 * res['batched'][-1]:.2f} ms, "
                    f"loop+grad {1000 * res['loop_grad'][-1]:.1f} ms, getitem {1000 * res['getitem'][-1]:.1f} ms")
            speed = [lg / b for lg, b in zip(res["loop_grad"], res["batched"])]
            speed_gi = [g / b for g, b in zip(res["getitem"], res["batched"])]
            for method, label in (("batched", "batched, no grad (sample_epoch)"),
                                  ("loop_grad", "per sample, grad on (compose)"),
                                  ("getitem", "per sample, no grad (Dataset[i])")):
                row = {"part": "compose", "shape": shape_name, "ipc": ipc, "method": label,
                       "images": info["images"], "bpc": info["bpc"], "hallucinators": info["hallucinators"],
                       "stored_bytes": info["stored_bytes"], "ipc_equivalent": info["ipc_equivalent"],
                       "unit": "ms per epoch of compositions",
                       **H.summarize(res[method], scale=1000.0, digits=2, loads=loads)}
                if method == "loop_grad":
                    sp = H.summarize(speed, digits=1)
                    row.update(speedup_of_batched=sp["mean"], speedup_of_batched_std=sp["std"], speedup_value=sp["value"])
                elif method == "getitem":
                    sp = H.summarize(speed_gi, digits=1)
                    row.update(speedup_of_batched=sp["mean"], speedup_of_batched_std=sp["std"], speedup_value=sp["value"])
                else:
                    row.update(speedup_of_batched=1.0, speedup_value="1")
                rows.append(row)
    return rows
