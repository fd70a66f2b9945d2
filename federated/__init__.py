"""Flower 1.41 wrapper of the HaBa toolkit: clients upload a factorized distillation of their data.

Modules (import them directly; this package imports nothing heavy by itself), one concept each:

* :mod:`federated.run_config` — the run configuration: keys, defaults (pyproject must equal them), validation.
* :mod:`federated.distill_settings` — the ``haba_core.DistillConfig`` a run config describes.
* :mod:`federated.data_cache` — dataset splits loaded once per process, cut to the run's limits.
* :mod:`federated.partitioning` — IID / Dirichlet-α partitions, a node's own partition.
* :mod:`federated.node_runtime` — a node's torch device and CPU threads.
* :mod:`federated.model` — the global model, its weights, its evaluation.
* :mod:`federated.expectation` — what a valid client payload must look like.
* :mod:`federated.conversion` — between a ``FactorizedDataset`` and the tensors a client uploads.
* :mod:`federated.payload` — payload encoding and server-side validation (:class:`PayloadRejected`).
* :mod:`federated.metrics_check`, :mod:`federated.metric_aggregation` — client metrics: checked, then combined.
* :mod:`federated.accounting` — bytes up/down per client per round (:class:`CommLedger`).
* :mod:`federated.defence` — the server's sanity score and outlier rule against hostile clients.
* :mod:`federated.client_common` — what both client modes share (run config, round, local evaluation).
* :mod:`federated.client_app` — ``app`` (dispatching on ``mode``), ``haba_client_app``.
* :mod:`federated.fedavg` — the FedAvg baseline's engine (local training, ``AccountedFedAvg``).
* :mod:`federated.server_app` — ``app`` (dispatching on ``mode``), ``HabaStrategy``, ``make_server_app``.
* :mod:`federated.fedavg_apps` — the FedAvg baseline as standalone apps (``fedavg_client_app``, ``fedavg_server_app``).
* :mod:`federated.in_process_grid`, :mod:`federated.simulation` — local runs: an in-process Flower ``Grid``, or Ray.
* :mod:`federated.task` — the documented compatibility path re-exporting the first eight.

Depends only on ``haba_core``, ``flwr`` and ``torch``.
"""

__all__ = ["run_config", "distill_settings", "data_cache", "partitioning", "node_runtime", "model", "expectation",
           "conversion", "payload", "metrics_check", "metric_aggregation", "accounting", "defence", "client_common",
           "client_app", "fedavg", "server_app", "fedavg_apps", "in_process_grid", "simulation", "task"]
