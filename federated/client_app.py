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

With ``shared-hallucinators``, an instruction carrying the server's bank (:mod:`federated.shared_bank`) makes
the node distil bases only through that bank, kept fixed, and upload no hallucinators; a bank round (no bank
in the instruction) keeps no refinement state, and refinement restarts whenever the bank or the number of
bases per class changes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from haba_core import ConfigError, distill, write_json

from .client_common import client_run_config, local_evaluate, server_round_of
from .conversion import drop_classes
from .distill_settings import distill_config
from .fedavg import fedavg_train
from .model import preprocessor_for
from .node_runtime import set_threads
from .partitioning import load_partition, node_partition
from .payload import encode_payload
from .shared_bank import BANK_ID_KEY, BANK_KEY, BPC_KEY, PREFIX, as_hallucinator_init, bank_id, decode_bank

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

    bank, bank_state = shared_bank_of(msg)
    if bank is not None:  # bases only, through the server's bank kept fixed (its size, not the plan's)
        dcfg.bpc, dcfg.ipc, dcfg.hallucinators = bank_state["bpc"], None, bank_state["hallucinators"]
        dcfg.lr_hallucinators, dcfg.lr_affine = 0.0, 0.0

    rounds = int(cfg["num-server-rounds"])
    refine = cfg["refine"] and rounds > 1 and not (cfg["shared-hallucinators"] and bank is None)
    ckpt = refinement_dir(context, pid) if refine else None
    resume = False
    if ckpt is not None:
        dcfg.checkpoint_dir = str(ckpt)
        dcfg.checkpoint_every = 10**9  # only the final checkpoint of each round is written
        first = _first_round_of_state(ckpt, bank_state, server_round)
        if server_round > first and (ckpt / "state.json").exists():
            resume = True
            dcfg.iterations = int(cfg["iterations"]) * (server_round - first + 1)
        elif ckpt.exists():
            shutil.rmtree(ckpt, ignore_errors=True)

    t0 = time.perf_counter()
    result = distill(train, dcfg, resume=resume, network_init=network_init, preprocessor=preprocessor_for(train),
                     hallucinator_init=as_hallucinator_init(bank) if bank is not None else None)
    seconds = time.perf_counter() - t0
    if ckpt is not None and bank_state is not None and server_round < rounds:
        write_json(ckpt / "bank.json", {**bank_state, "first_round": first})
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
    if bank is not None:
        tensors = {k: v for k, v in tensors.items() if not k.startswith(PREFIX)}
        meta["bank_id"] = bank_state["bank_id"]
        meta.pop("storage", None)  # counts the bank, which this upload does not carry
    content = encode_payload(tensors, meta, {"num-examples": len(train), "distill-seconds": seconds,
                                             "partition-id": pid, "num-bases": int(tensors["bases"].shape[0]),
                                             "server-round": server_round})
    logger.info("partition %d round %d: distilled %d examples into %d bases + %d hallucinators in %.1fs",
                pid, server_round, len(train), int(tensors["bases"].shape[0]), result.num_hallucinators, seconds)
    return Message(content, reply_to=msg)


def shared_bank_of(msg: Message) -> tuple[dict | None, dict | None]:
    """The shared bank an instruction carries (tensors named ``hallucinators.<k>``) and its state
    (``bank_id``, ``bpc``, ``hallucinators``: the bank's count), or ``(None, None)``. A bank whose
    fingerprint differs from the one announced raises :class:`ConfigError` (the node replies with an error
    instead of distilling)."""
    if BANK_KEY not in msg.content.array_records:
        return None, None
    bank = decode_bank(msg.content.array_records[BANK_KEY])
    cfg = msg.content.config_records.get("config") or {}
    announced, bpc = cfg.get(BANK_ID_KEY), cfg.get(BPC_KEY)
    if announced != bank_id(bank):
        raise ConfigError("the shared bank received does not match the fingerprint the server announced")
    if not isinstance(bpc, int) or bpc < 1:
        raise ConfigError(f"the server's bases per class for the shared bank must be a positive integer, got {bpc!r}")
    counts = {int(t.shape[0]) if t.dim() else 0 for t in bank.values()}
    if len(counts) != 1 or min(counts) < 1:
        raise ConfigError(f"the shared bank's tensors disagree on the number of hallucinators ({sorted(counts)})")
    return bank, {"bank_id": announced, "bpc": int(bpc), "hallucinators": counts.pop()}


def _first_round_of_state(ckpt: Path, bank_state: dict | None, server_round: int) -> int:
    """The round a refinement checkpoint started in: 1 without a shared bank; with one, the round recorded
    next to the checkpoint if it was made through the same bank and bases per class, else this round."""
    if bank_state is None:
        return 1
    try:
        saved = json.loads((ckpt / "bank.json").read_text())
    except (OSError, ValueError):
        return server_round
    same = isinstance(saved, dict) and all(saved.get(k) == v for k, v in bank_state.items())
    first = saved.get("first_round") if same else None
    return first if isinstance(first, int) and 1 <= first <= server_round else server_round


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
