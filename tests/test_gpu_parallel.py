"""The side-by-side GPU launcher's wiring, checked on CPU with --smoke sizes on a tiny CIFAR-shaped ImageFolder."""

from __future__ import annotations

import argparse
import json

import pytest

from benchmarks import gpu_parallel
from test_gpu_protocol import tiny_cifar


def test_cell_syntax_is_checked():
    assert gpu_parallel.parse_cell("dm:11:idc,fixed-bank") == ("dm", 11, ["idc", "fixed-bank"])
    for bad in ("dm:11", "mtt:2:idc", "dm:0:idc", "dm:two:idc", "dm:2:"):
        with pytest.raises(argparse.ArgumentTypeError):
            gpu_parallel.parse_cell(bad)
    with pytest.raises(SystemExit):
        gpu_parallel.parse_args(["--data", "x", "--out", "y", "--pairs", "a:b,c"])


def test_paired_differences_and_the_cross_architecture_mean():
    rows = [{"objective": "dm", "ipc": 2, "method": m, "seed": s, "arch": a, "acc": acc}
            for m, s, a, acc in [("a", 0, "ConvNet", 50.0), ("b", 0, "ConvNet", 49.0), ("a", 1, "ConvNet", 48.0),
                                 ("b", 1, "ConvNet", 49.0), ("a", 0, "VGG11", 40.0), ("a", 0, "AlexNet", 30.0),
                                 ("b", 0, "VGG11", 36.0), ("b", 0, "AlexNet", 30.0), ("b", 1, "VGG11", 1.0)]]
    rows.append({"objective": "dm", "ipc": 2, "method": "a", "seed": 1, "arch": "AlexNet", "error": "x"})
    full = gpu_parallel.with_cross_arch_mean(rows, ["VGG11", "AlexNet"])
    means = [r for r in full if r["arch"] == "mean of VGG11 / AlexNet"]
    assert [(r["method"], r["seed"], r["acc"]) for r in means] == [("a", 0, 35.0), ("b", 0, 33.0)]  # seed 1 incomplete
    lines = gpu_parallel.paired(full, "a:b")
    conv = next(line for line in lines if "| ConvNet |" in line)
    assert "+1.00, −1.00" in conv and "+0.00 ± 1.00" in conv and "1/2" in conv
    mean = next(line for line in lines if "mean of VGG11 / AlexNet" in line)
    assert "+2.00 ± 0.00" in mean and "1/1" in mean


def test_launcher_runs_each_job_in_its_own_process_and_merges_the_rows(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "rows.jsonl").write_text('{"stale": true}\n')  # an earlier run's rows must not mix in
    assert gpu_parallel.main(["--smoke", "--device", "cpu", "--data", str(tiny_cifar(tmp_path)), "--out", str(out),
                              "--cell", "dm:2:idc,plain", "--seeds", "0", "--cross-archs", "AlexNet",
                              "--deadline-s", "240", "--pairs", "idc:plain"]) == 0
    result = json.loads((out / "gpu_parallel.json").read_text())
    rows = result["rows"]
    assert not [r for r in rows if "error" in r], rows
    assert {(r["method"], r["arch"]) for r in rows} == {(m, a) for m in ("idc", "plain") for a in ("ConvNet", "AlexNet")}
    assert all(r["iterations"] > 0 and r["stored_bytes"] <= 2 * 10 * 3 * 32 * 32 * 4 for r in rows)
    assert result["meta"]["jobs"] == 2
    md = (out / "gpu_parallel.md").read_text()
    assert "#### CIFAR-10, DM, IPC-2 equivalent" in md and "idc − plain" in md
    assert (out / "jobs.log").exists() and not list(out.glob(".*.tmp"))
