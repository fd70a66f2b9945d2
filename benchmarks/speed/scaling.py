"""Part 4: scaling of the haba DM iteration with bases per class, |H| and image size."""

from __future__ import annotations

import torch

from .. import harness as H
from .common import base_config, composed_per_step, random_dataset, time_distillation
from .settings import Settings

def part_scaling(s: Settings, device: torch.device, seeds: list[int], log) -> list[dict]:
    b0, h0, z0 = s.scaling_base
    points: list[tuple[str, int, int, int, int]] = []   # (varied, bpc, |H|, size, hallucinators_per_step)
    for b in s.scaling_bpc:
        points.append(("BPC", b, h0, z0, 2))
    for h in s.scaling_h:
        points.append(("|H|", b0, h, z0, 2))
    if s.scaling_all_h:
        for h in s.scaling_h:
            if h > 2:
                points.append(("|H| (all per step)", b0, h, z0, h))
    for z in s.scaling_size:
        points.append(("image size", b0, h0, z, 2))
    rows = []
    cache: dict[tuple, dict] = {}
    for varied, bpc, nh, size, hps in points:
        key = (bpc, nh, size, hps)
        if key not in cache:
            times, peaks, loads = [], [], []
            fd = cfg = None
            for seed in seeds:
                train = random_dataset((3, size, size), max(s.batch_real, max(s.scaling_bpc), 16), seed,
                                       name=f"random-3x{size}x{size}")
                cfg = base_config(s, device, objective="dm", parameterization="haba", bpc=bpc, ipc=None,
                                  hallucinators=nh, hallucinators_per_step=hps, seed=seed)
                r = time_distillation(train, cfg, device, s.scaling_timed_iterations)
                times.append(sum(r["times"]) / len(r["times"]))
                peaks.append(r["peak"])
                loads.extend(r["loads"])
                fd = r["fd"]
                log(f"[4] bpc{bpc} H{nh} size{size} hps{hps} seed{seed}: {1000 * times[-1]:.0f} ms/it, "
                    f"load {H.load_average()[0]}")
            peak_m, _ = H.mean_std(peaks)
            cache[key] = {"shape": f"3×{size}×{size}", "bpc": bpc, "hallucinators": nh, "image_size": size,
                          "hallucinators_per_step": min(hps, nh), "images_per_step": composed_per_step(fd, cfg),
                          **H.storage_columns(fd), "unit": "ms/iteration",
                          **H.summarize(times, scale=1000.0, loads=loads), "peak_bytes": peak_m}
        rows.append({"part": "scaling", "varied": varied, **cache[key]})
    # relative cost within each sweep (to its first point)
    for varied in dict.fromkeys(r["varied"] for r in rows):
        group = [r for r in rows if r["varied"] == varied]
        ref = next((r for r in rows if (r["bpc"], r["hallucinators"], r["image_size"]) == (b0, h0, z0)
                    and r["hallucinators_per_step"] == min(2, h0)), group[0])
        for r in group:
            r["relative"] = r["mean"] / ref["mean"]
    return rows
