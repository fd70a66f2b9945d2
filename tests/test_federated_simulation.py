"""One small federated run through Flower's Ray simulation (``haba-fl --backend ray``), in a subprocess
under a hard timeout; every process it leaves behind (Ray's raylet, GCS, workers) is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARD_TIMEOUT_S = 240


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        import psutil

        kids = psutil.Process(proc.pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - psutil missing or process gone
        kids = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for k in kids:
            try:
                k.send_signal(sig)
            except Exception:  # noqa: BLE001
                pass
        try:
            proc.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.slow
@pytest.mark.timeout(HARD_TIMEOUT_S + 30)
def test_ray_simulation_one_shot(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ)
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]), FLWR_TELEMETRY_ENABLED="0",
               RAY_DEDUP_LOGS="0", RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "haba_cl.fl_cli", "--backend", "ray", "--mode", "haba", "--dataset", "digits",
           "--clients", "2", "--rounds", "1", "--iterations", "2", "--net-width", "16", "--net-depth", "2",
           "--hallucinators", "2", "--server-epochs", "3", "--fraction-evaluate", "0", "--set", "batch-real=32",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=HARD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        output, _ = proc.communicate()
        pytest.fail(f"Ray simulation exceeded {HARD_TIMEOUT_S}s:\n{(output or '')[-4000:]}")
    finally:
        _kill_tree(proc)
    assert proc.returncode == 0, output[-4000:]
    doc = json.loads((out / "results.json").read_text())
    run = doc["runs"]["haba"]
    assert run["status"] == "ok" and run["rounds"][0]["clients_valid"] == 2
    assert run["rounds"][0]["bytes_up"] > 0 and run["rounds"][0]["bytes_down"] == 0
    assert [r["method"] for r in doc["table"]] == ["HaBa one-shot"]
    assert "ClientAppActor" in output  # the clients really ran in Ray actors
