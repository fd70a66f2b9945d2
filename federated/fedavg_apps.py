"""The FedAvg baseline as standalone Flower apps (``fedavg_client_app``, ``fedavg_server_app``).

The dispatching ``federated.client_app:app`` and ``federated.server_app:app`` (referenced by pyproject) run
the same handlers when ``mode = "fedavg"``; the engine is :mod:`federated.fedavg`.
"""

from __future__ import annotations

from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from .client_common import local_evaluate
from .fedavg import fedavg_train
from .server_app import run_server

fedavg_client_app = ClientApp()
fedavg_client_app.train()(fedavg_train)
fedavg_client_app.evaluate()(local_evaluate)


def _fedavg_main(grid: Grid, context: Context) -> None:
    run_server(grid, context, {"mode": "fedavg"})


fedavg_server_app = ServerApp()
fedavg_server_app.main()(_fedavg_main)
