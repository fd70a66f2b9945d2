"""The speed study's --quick mode still runs end to end, and the shared harness behaves.

Only the speed study is run here; the other studies add their own quick tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ROW_KEYS = {"part", "stored_bytes", "ipc_equivalent", "mean", "std", "value", "n", "load"}


def test_speed_quick_runs_and_writes_results(tmp_path):
    out = tmp_path / "results"
    md = tmp_path / "BENCHMARKS.md"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--quick", "--seeds", "2", "--device", "cpu",
                           "--out", str(out), "--md", str(md)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "speed.json").read_text())
    assert result["name"] == "speed"
    meta = result["meta"]
    for key in ("machine", "command", "date", "args", "settings", "seeds", "targets", "headline", "profile"):
        assert key in meta, key
    assert meta["mode"] == "quick" and meta["seeds"] == [0, 1]
    assert "benchmarks.speed" in meta["command"] and "--quick" in meta["command"]
    for key in ("cpu_model", "cpu_cores", "torch", "device_name", "load_average", "date"):
        assert key in meta["machine"], key
    assert set(meta["headline"]) == {"haba_iteration_ratio", "online_overhead", "batched_compose_speedup"}
    assert meta["profile"] and all(p["top_ops"] and p["phases"] for p in meta["profile"])
    rows = result["rows"]
    assert {r["part"] for r in rows} == {"threads", "distill_iteration", "train_epoch", "scaling", "compose"}
    for r in rows:
        assert ROW_KEYS <= set(r), (r["part"], ROW_KEYS - set(r))
        assert r["n"] == 2 and r["mean"] > 0 and r["stored_bytes"] > 0 and r["ipc_equivalent"] > 0
    objectives = {r["objective"] for r in rows if r["part"] == "distill_iteration"}
    assert objectives == {"dm", "dc", "dsa", "mtt"}
    assert all("ratio_vs_plain" in r for r in rows if r["part"] in ("distill_iteration", "train_epoch"))
    it = [r for r in rows if r["part"] == "distill_iteration"]
    assert all(r["it_per_s"] > 0 and r["peak_bytes"] is not None for r in it)
    mtt = {r["variant"]: r for r in it if r["objective"] == "mtt" and r["batch_real"] == meta["settings"]["batch_real"]}
    assert set(mtt) == {"plain", "haba", "haba, pairs (2 h/step, old default)"}
    # per unrolled step: one image per basis (the reference's work) vs the pairs of 2 hallucinators
    assert mtt["haba, pairs (2 h/step, old default)"]["images_per_step"] == 2 * mtt["haba"]["images_per_step"]
    # phases come from the loop's phase hook (no patching): L_DD and the adversary are both seen
    labels = {p["phase"][0] for pr in meta["profile"] for p in pr["phases"]}
    assert {"①", "②", "④"} <= labels
    text = md.read_text()
    assert "<!-- speed:begin -->" in text and "<!-- speed:end -->" in text and "## Speed" in text
    print(f"speed --quick took {elapsed:.1f} s")


def test_harness_helpers(tmp_path):
    from benchmarks import harness as H

    assert H.mean_std([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5))
    assert H.mean_std([5.0]) == (5.0, 0.0)
    assert H.fmt_ms(12.345, 0.4) == "12.3 ± 0.4"
    assert H.repeat_seeds(lambda s: s * 2, [0, 1, 2]) == [0, 2, 4]
    table = H.markdown_table([{"a": 1, "b": 2.5}, {"a": None}], ["a", ("b", "|H|")])
    assert table.splitlines()[0] == "| a | \\|H\\| |" and "| – | – |" in table
    with H.Timer() as t:
        sum(range(1000))
    assert t.seconds >= 0
    _, peak = H.peak_memory(lambda: bytearray(64 << 20), "cpu")
    assert peak >= 32 << 20
    md = tmp_path / "B.md"
    H.update_benchmarks_md("x", "## X\nxyzzy-1", md)
    H.update_benchmarks_md("y", "## Y", md)
    H.update_benchmarks_md("x", "## X\nxyzzy-2", md)
    text = md.read_text()
    assert text.startswith("# Benchmarks") and "xyzzy-2" in text and "xyzzy-1" not in text
    assert text.index("<!-- x:begin -->") < text.index("<!-- y:begin -->")
    path = H.write_results("demo", [{"a": 1}], {"k": "v"}, tmp_path / "out")
    data = json.loads(path.read_text())
    assert data["rows"] == [{"a": 1}] and data["meta"]["k"] == "v" and "command" in data["meta"]


def test_iteration_cost_and_compose_modes_run_tiny():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed.iteration_cost", "--objective", "mtt", "--bpc", "1",
                           "--iterations", "1", "--per-class", "4", "--set", "mtt.syn_steps=2", "--set", "net_width=8",
                           "--set", "mtt.composition=pairs"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["bases"] == 10 and len(row["cpu_s_per_iteration"]) == 1 and row["peak_rss_gib"] > 0
    assert {"compose", "objective", "backward", "adversary"} <= set(row["phases_cpu_s"])
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed.compose_modes", "--sizes", "4", "--reps", "1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("N=    4") == 4


def test_speed_restrict_keeps_only_the_named_shapes_and_objectives():
    import argparse

    sys.path.insert(0, str(REPO))
    from benchmarks.speed.cli import restrict
    from benchmarks.speed.settings import FULL

    s = restrict(FULL, ["cifar10-like"], ["dm", "mtt"], argparse.ArgumentParser())
    assert list(s.shapes) == ["cifar10-like"] and s.objectives == {"cifar10-like": ("dm", "mtt")}
    assert s.batch_real_checks == FULL.batch_real_checks  # the DM re-run stays
    assert restrict(FULL, None, ["mtt"], argparse.ArgumentParser()).batch_real_checks == ()
    with pytest.raises(SystemExit):
        restrict(FULL, ["imagenet-like"], None, argparse.ArgumentParser())


def test_speed_precision_reaches_every_distillation_config():
    from dataclasses import replace

    sys.path.insert(0, str(REPO))
    from benchmarks.speed.common import base_config
    from benchmarks.speed.settings import QUICK

    assert base_config(QUICK, torch.device("cpu"), objective="dm").precision == "fp32"
    assert base_config(replace(QUICK, precision="bf16"), torch.device("cpu"), objective="dc").precision == "bf16"
