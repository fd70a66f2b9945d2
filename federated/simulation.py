"""Run the federated apps locally: in-process (default, no Ray) or through Flower's Ray simulation.

Both backends run the very objects ``flwr run .`` runs: ``federated.client_app:app`` and the ServerApp
of :func:`federated.server_app.make_server_app` (``federated.server_app:app`` with run-config
overrides). The in-process backend replaces only the transport (:class:`federated.in_process_grid.InProcessGrid`);
``backend="ray"`` uses ``flwr.simulation.run_simulation``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from flwr.app import Context, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

from .in_process_grid import InProcessGrid, set_task_identity

BACKENDS = ("inprocess", "ray")


def run_inprocess(server_app: ServerApp, client_app: ClientApp, num_nodes: int,
                  run_config: Mapping[str, Any] | None = None) -> None:
    """Run ``server_app`` against ``num_nodes`` in-process nodes executing ``client_app``."""
    grid = InProcessGrid(client_app, num_nodes, run_config)
    set_task_identity(grid._run_id)
    context = Context(run_id=grid._run_id, node_id=0, node_config={}, state=RecordDict(),
                      run_config=dict(run_config or {}))
    server_app(grid, context)


def _project_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def run_ray(server_app: ServerApp, client_app: ClientApp, num_nodes: int, num_cpus: int | None = None,
            cpus_per_client: float = 1.0) -> None:
    """Run through ``flwr.simulation.run_simulation`` (Ray backend), with modest CPU settings."""
    from flwr.simulation import run_simulation

    root = _project_root()
    old = os.environ.get("PYTHONPATH")
    parts = [p for p in (old or "").split(os.pathsep) if p]
    if root not in parts:  # Ray workers must import `federated` and `haba_core`
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *parts])
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    total = num_cpus or max(1, min(2, os.cpu_count() or 1))
    backend_config = {
        "client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
        "init_args": {"num_cpus": total, "num_gpus": 0, "include_dashboard": False,
                      "object_store_memory": 200 * 1024 * 1024},
    }
    try:
        run_simulation(server_app=server_app, client_app=client_app, num_supernodes=num_nodes,
                       backend_config=backend_config)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def run_federated(overrides: Mapping[str, Any], num_clients: int, backend: str = "inprocess") -> dict[str, Any]:
    """Run one federated experiment and return its results document (also written to ``results-path``)."""
    from .client_app import app as client_app
    from .run_config import resolve_run_config
    from .server_app import make_server_app

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use {' or '.join(BACKENDS)}")
    cfg = resolve_run_config(overrides)
    if not cfg["results-path"]:
        raise ValueError("run_federated needs a results-path")
    path = Path(cfg["results-path"])
    if path.exists():
        path.unlink()
    server_app = make_server_app(dict(overrides))
    if backend == "ray":
        run_ray(server_app, client_app, num_clients)
    else:
        run_inprocess(server_app, client_app, num_clients)
    if not path.exists():
        raise RuntimeError(f"the server finished without writing {path}")
    return json.loads(path.read_text())
