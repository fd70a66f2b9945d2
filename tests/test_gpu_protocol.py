"""The GPU protocol's wiring, checked on CPU with its --smoke sizes on a tiny CIFAR-shaped ImageFolder."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import gpu_protocol


def tiny_cifar(tmp: Path, classes: int = 10, n_train: int = 12, n_test: int = 4) -> Path:
    rng = np.random.default_rng(0)
    root = tmp / "tiny"
    for split, n in (("train", n_train), ("test", n_test)):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(n):
                base = np.full((32, 32, 3), 25 * c, dtype=np.int16)
                img = np.clip(base + rng.integers(-20, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i:03d}.jpg", quality=75)
    archive = tmp / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(root / split, arcname=split)
    return archive


def test_smoke_runs_every_phase(tmp_path):
    out = tmp_path / "out"
    assert gpu_protocol.main(["--smoke", "--device", "cpu", "--data", str(tiny_cifar(tmp_path)), "--out", str(out),
                              "--ipcs", "2,3", "--seeds", "2", "--cross-archs", "AlexNet",
                              "--methods", "random,plain,haba-paper,modest-frozen"]) == 0
    result = json.loads((out / "gpu_protocol.json").read_text())
    rows = result["rows"]
    assert not [r for r in rows if "error" in r], [r for r in rows if "error" in r]
    methods = {"random", "plain", "haba-paper", "modest-frozen"}
    for objective in ("dm", "mtt"):
        for ipc in (2, 3):
            got = {r["method"] for r in rows if (r["objective"], r["ipc"], r["arch"]) == (objective, ipc, "ConvNet")}
            assert methods <= got, (objective, ipc, got)
    assert {r["arch"] for r in rows} == {"ConvNet", "AlexNet"}
    assert {r["seed"] for r in rows if r["objective"] == "dm"} == {0, 1}
    assert all(r["iterations"] > 0 for r in rows if r["method"] != "random")
    # equal stored bytes within a cell: no distilled row exceeds its IPC budget
    for r in rows:
        budget = r["ipc"] * 10 * 3 * 32 * 32 * 4
        assert r["stored_bytes"] <= budget * 1.001, r
    assert any('"identical": true' in c for c in result["meta"]["checks"]), result["meta"]["checks"]
    md = (out / "gpu_protocol.md").read_text()
    assert "#### CIFAR-10, DM, IPC-2 equivalent" in md and "#### CIFAR-10, MTT, IPC-3 equivalent" in md
    assert not list(out.glob(".*.tmp"))


def test_frozen_variant_freezes_only_the_hallucinators():
    args = gpu_protocol.parse_args(["--data", "x", "--out", "y", "--device", "cpu"])
    learned = gpu_protocol.method_config("haba-paper", "dm", 2, args, 0)
    frozen = gpu_protocol.method_config("haba-paper-frozen", "dm", 2, args, 0)
    assert learned.resolved_lr_hallucinators == learned.resolved_lr_bases  # the paper: η_H = η_B
    assert frozen.resolved_lr_hallucinators == 0.0 and frozen.lr_affine == 0.0
    assert frozen.resolved_lr_bases == learned.resolved_lr_bases
    assert learned.hallucinator.init == "random"


def test_dm_only_runs_no_mtt_and_pretrained_rows_are_configured(tmp_path):
    out = tmp_path / "out"
    assert gpu_protocol.main(["--smoke", "--device", "cpu", "--data", str(tiny_cifar(tmp_path)), "--out", str(out),
                              "--ipcs", "2,3", "--seeds", "1", "--dm-only", "--methods", "idc"]) == 0
    rows = json.loads((out / "gpu_protocol.json").read_text())["rows"]
    assert {(r["objective"], r["ipc"], r["method"]) for r in rows} == {("dm", 2, "idc"), ("dm", 3, "idc")}
    args = gpu_protocol.parse_args(["--smoke", "--data", "x", "--out", "y"])
    pre = gpu_protocol.method_config("modest-pre", "dm", 2, args, 0)
    frozen = gpu_protocol.method_config("modest-pre-frozen", "dm", 2, args, 0)
    assert pre.hallucinator_pretrain_steps == frozen.hallucinator_pretrain_steps == 300
    assert pre.lr_hallucinators > 0 and frozen.lr_hallucinators == 0.0


def test_fixed_bank_row_is_the_recipe_and_modest_fast_its_learned_twin():
    args = gpu_protocol.parse_args(["--data", "x", "--out", "y", "--device", "cpu"])
    fixed = gpu_protocol.method_config("fixed-bank", "dm", 11, args, 0)
    learned = gpu_protocol.method_config("modest-fast", "dm", 11, args, 0)
    for cfg in (fixed, learned):
        assert cfg.parameterization == "idc-haba" and cfg.hallucinators_per_step == 1
        assert cfg.hallucinator_pairing == "per_basis" and cfg.net_width == args.width
    assert fixed.lr_hallucinators == 0.0 and fixed.lr_affine == 0.0
    assert learned.lr_hallucinators > 0.0 and learned.lr_affine != 0.0
    assert fixed.resolved_lr_bases == learned.resolved_lr_bases


def test_a_failed_evaluation_is_a_row_with_its_key_and_distillation_columns():
    from benchmarks.gpu_protocol import scored_row
    from haba_core import EvalConfig

    class Broken:  # a set whose evaluation raises
        def storage(self):
            raise AssertionError("not reached")

    row = scored_row(("dm", 11, "idc", 2), Broken(), None, EvalConfig(arch="ConvNet", epochs=1), {"iterations": 7})
    assert {k: row[k] for k in ("objective", "ipc", "method", "seed", "arch", "iterations")} == {
        "objective": "dm", "ipc": 11, "method": "idc", "seed": 2, "arch": "ConvNet", "iterations": 7}
    assert row["error"].split(":")[0] in ("AttributeError", "TypeError") and "acc" not in row
