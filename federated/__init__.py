"""Flower 1.41 wrapper of the HaBa toolkit: clients upload a factorized distillation of their data.

Modules (import them directly; this package imports nothing heavy by itself):

* :mod:`federated.task` — run configuration, model, IID / Dirichlet-α partitioning, conversions.
* :mod:`federated.payload` — payload encoding and server-side validation (:class:`PayloadRejected`).
* :mod:`federated.accounting` — bytes up/down per client per round (:class:`CommLedger`).
* :mod:`federated.client_app` — ``app`` (dispatching on ``mode``), ``haba_client_app``.
* :mod:`federated.server_app` — ``app`` (dispatching on ``mode``), ``HabaStrategy``, ``make_server_app``.
* :mod:`federated.fedavg_apps` — the FedAvg baseline (``fedavg_client_app``, ``fedavg_server_app``).

Depends only on ``haba_core``, ``flwr`` and ``torch``.
"""

__all__ = ["task", "payload", "accounting", "client_app", "server_app", "fedavg_apps"]
