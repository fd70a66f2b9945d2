"""The HaBa ClientApp: distil the node's partition into bases + hallucinators and upload those.

``app`` (referenced by pyproject) dispatches on the run-config key ``mode`` sent by the server:
``haba`` → :func:`haba_train`, ``fedavg`` → :func:`federated.fedavg.fedavg_train`; the evaluate
handler (local accuracy of the received global model) is shared. ``haba_client_app`` is the HaBa-only app.

Train instruction content: ``"config"`` ConfigRecord (the client part of the run config plus
``server-round``) and, from round 2 on, ``"arrays"`` (the global model). With ``refine = true`` and more
than one round, a node keeps its distillation checkpoint between rounds (in
``$TMPDIR/haba-fl/run-<run_id>/partition-<i>``, or under the node config's ``state-dir``) and resumes it
for ``iterations`` more steps whose networks start from the global weights
(``distill(..., network_init=global_state_dict, resume=True)``); it is deleted after the last round.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from haba_core import distill

from .client_common import client_run_config, local_evaluate, server_round_of
from .conversion import drop_classes
from .distill_settings import distill_config
from .fedavg import fedavg_train
from .model import preprocessor_for
from .node_runtime import set_threads
from .partitioning import load_partition, node_partition
from .payload import encode_payload

logger = logging.getLogger("flwr.haba")

# describe() fields that are only diagnostics; not worth shipping.
_META_DROP = ("history", "history_tail", "timings")


def refinement_dir(context: Context, partition_id: int) -> Path:
    base = context.node_config.get("state-dir") or os.path.join(tempfile.gettempdir(), "haba-fl")
    return Path(str(base)) / f"run-{context.run_id}" / f"partition-{partition_id}"


def haba_train(msg: Message, context: Context) -> Message:
    """Distil this node's partition and reply with the factorized payload (see :mod:`federated.payload`)."""
    cfg = client_run_config(msg, context)
    set_threads(cfg)
    pid, n = node_partition(context.node_config)
    server_round = server_round_of(msg)
    train = load_partition(cfg, pid, n, split="train")
    dcfg = distill_config(cfg, seed=int(cfg["seed"]) * 1000 + pid)

    network_init = None
    if "arrays" in msg.content.array_records and len(msg.content.array_records["arrays"]) > 0:
        network_init = msg.content.array_records["arrays"].to_torch_state_dict()

    rounds = int(cfg["num-server-rounds"])
    ckpt = refinement_dir(context, pid) if cfg["refine"] and rounds > 1 else None
    resume = False
    if ckpt is not None:
        dcfg.checkpoint_dir = str(ckpt)
        dcfg.checkpoint_every = 10**9  # only the final checkpoint of each round is written
        if server_round > 1 and (ckpt / "state.json").exists():
            resume = True
            dcfg.iterations = int(cfg["iterations"]) * server_round
        elif ckpt.exists():
            shutil.rmtree(ckpt, ignore_errors=True)

    t0 = time.perf_counter()
    result = distill(train, dcfg, resume=resume, network_init=network_init, preprocessor=preprocessor_for(train))
    seconds = time.perf_counter() - t0
    if ckpt is not None and server_round >= rounds:
        shutil.rmtree(ckpt, ignore_errors=True)
        try:
            ckpt.parent.rmdir()  # only if no other partition of this run lives on this machine
        except OSError:
            pass

    counts = torch.tensor(train.samples_per_class())
    keep = counts > 0 if cfg["drop-empty-classes"] else torch.ones_like(counts, dtype=torch.bool)
    tensors, meta = drop_classes(result, keep)
    for key in _META_DROP:
        meta.pop(key, None)
    content = encode_payload(tensors, meta, {"num-examples": len(train), "distill-seconds": seconds,
                                             "partition-id": pid, "num-bases": int(tensors["bases"].shape[0]),
                                             "server-round": server_round})
    logger.info("partition %d round %d: distilled %d examples into %d bases + %d hallucinators in %.1fs",
                pid, server_round, len(train), int(tensors["bases"].shape[0]), result.num_hallucinators, seconds)
    return Message(content, reply_to=msg)


def _dispatch_train(msg: Message, context: Context) -> Message:
    cfg_rec = msg.content.config_records.get("config")
    mode = (cfg_rec or {}).get("mode", context.run_config.get("mode", "haba"))
    if mode == "fedavg":
        return fedavg_train(msg, context)
    return haba_train(msg, context)


haba_client_app = ClientApp()
haba_client_app.train()(haba_train)
haba_client_app.evaluate()(local_evaluate)

app = ClientApp()
app.train()(_dispatch_train)
app.evaluate()(local_evaluate)
