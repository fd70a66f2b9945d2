"""A real Flower deployment on 127.0.0.1: one SuperLink, two SuperNodes, ``flwr run . <connection>``.

Everything runs in a temporary FLWR_HOME with its own config.toml (the SuperLink connection), on free
ports chosen at runtime, with runtime dependency installation and telemetry disabled. Every process
this test starts (and every descendant they spawn, e.g. SuperExec and app processes) is torn down in
``finally``, also on failure or timeout.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEADLINE_S = 240


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    fh = open(log, "wb")
    return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=log.parent)


def teardown(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process group and every known descendant; SIGKILL whatever survives 5 s."""
    try:
        import psutil
    except ImportError:  # pragma: no cover
        psutil = None
    victims = []
    for p in procs:
        if psutil is not None:
            try:
                victims += psutil.Process(p.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            try:
                os.killpg(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for v in victims:
            try:
                v.send_signal(sig)
            except Exception:  # noqa: BLE001 - already gone
                pass
        deadline = time.monotonic() + 5
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        if psutil is not None:
            psutil.wait_procs([v for v in victims if v.is_running()], timeout=max(0.1, deadline - time.monotonic()))
        if all(p.poll() is not None for p in procs) and (psutil is None or not any(
                v.is_running() and v.status() != psutil.STATUS_ZOMBIE for v in victims)):
            break


def wait_http(url: str, procs: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a process exited early (codes {[p.poll() for p in procs]})")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def tails(logs: list[Path]) -> str:
    out = []
    for log in logs:
        if log.exists():
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:]))
    return "\n".join(out)


@pytest.mark.slow
@pytest.mark.timeout(DEADLINE_S + 60)
def test_one_shot_haba_through_a_real_superlink_and_two_supernodes(tmp_path):
    home = tmp_path / "flwr-home"
    home.mkdir()
    link_port = free_port()
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "haba-test"\n\n'
        f'[superlink.haba-test]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n')
    env = dict(os.environ)
    env.update(FLWR_HOME=str(home), FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1", FLWR_TELEMETRY_ENABLED="0",
               FLWR_DISABLE_UPDATE_CHECK="1", PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]))
    # the SuperLink and SuperNodes spawn `flower-superexec`, `flwr-serverapp`, `flwr-clientapp` from PATH
    results = tmp_path / "results.json"
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []
    try:
        logs.append(tmp_path / "superlink.log")
        procs.append(start([tool("flower-superlink"), "--insecure", "--host", "127.0.0.1", "--port", str(link_port),
                            "--disable-runtime-dependency-installation"], env, logs[-1]))
        wait_http(f"http://127.0.0.1:{link_port}/health", procs, timeout=60)
        for pid in range(2):
            logs.append(tmp_path / f"supernode-{pid}.log")
            procs.append(start([tool("flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link_port}",
                                "--host", "127.0.0.1", "--port", str(free_port()), "--max-wait-time", "120",
                                "--node-config", f"partition-id={pid} num-partitions=2"], env, logs[-1]))
        # recipe modest: at these toy settings (3 iterations, width 16) the digits default paper-pca leaves one
        # honest client's composed images out of the server's range (fine at the app's defaults)
        run_config = (f'results-path="{results}" dataset="digits" recipe="modest" num-server-rounds=1 iterations=3 net-width=16 '
                      'net-depth=2 hallucinators=2 batch-real=32 server-epochs=3 fraction-evaluate=0.0 '
                      'min-available-clients=2 wait-for-clients-s=60.0 round-timeout-s=150.0')
        submit = subprocess.run([tool("flwr"), "run", str(ROOT), "haba-test", "--run-config", run_config],
                                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90)
        assert submit.returncode == 0, submit.stdout + submit.stderr + tails(logs)
        assert "Successfully started run" in submit.stdout, submit.stdout
        deadline = time.monotonic() + DEADLINE_S - 60
        while not results.exists() and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), "a Flower process died\n" + tails(logs)
            time.sleep(1)
        assert results.exists(), "the ServerApp wrote no results in time\n" + tails(logs)
        doc = json.loads(results.read_text())
    finally:
        teardown(procs)
    assert all(p.poll() is not None for p in procs)
    assert doc["status"] == "ok" and doc["mode"] == "haba"
    r1 = doc["rounds"][0]
    assert r1["clients_valid"] == 2 and r1["rejected"] == [] and r1["accuracy"] is not None
    assert sorted(c["partition_id"] for c in r1["clients"]) == [0, 1]
    assert r1["bytes_down"] == 0 and r1["bytes_up"] == sum(c["bytes_up"] for c in r1["clients"]) > 0
    # the ServerApp saved the final model and the global synthetic set next to its results (issue 17)
    assert (tmp_path / "results-model.safetensors").is_file()
    assert (tmp_path / "results-synthetic" / "collection.json").is_file()
    assert 0.0 <= r1["accuracy"] <= 1.0
