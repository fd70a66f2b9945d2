"""One hallucinator bank shared by every client (run-config key ``shared-hallucinators``, issue 14).

Protocol. While the server holds no bank, a round is a *bank round*: only one client (the lowest node id)
is asked, and it distils as usual, uploading bases and hallucinators. The server validates that payload and
keeps its bank. In every later round the server sends the bank down (ArrayRecord :data:`BANK_KEY`, plus its
fingerprint and the per-client bases-per-class in the instruction's config); each client distils **bases
only** through that bank kept fixed (``distill(hallucinator_init=bank)`` with ``lr_hallucinators`` and
``lr_affine`` at 0) and uploads bases, labels and the fingerprint — no hallucinators. The server checks the
fingerprint and composes every client's bases through its own copy of the bank.

Bytes. The bank is stored once, so each of the K clients asked in a round gets the budget
``ipc × classes × image numbers − ceil(bank numbers / K)`` for its bases (:func:`shared_bpc`): the global
synthetic set holds at most K per-client budgets, the same as K clients with their own banks or IDC
uploads. The bank round's upload is extra traffic (counted in the ledger), not extra storage: the donor's
bank-round part is replaced by its bases-only part.
"""

from __future__ import annotations

import hashlib
import math
from typing import Mapping

import numpy as np
import torch
from torch import Tensor

from haba_core import ConfigError

BANK_KEY = "haba.bank"
"""Name of the ArrayRecord carrying the bank in a train instruction (tensors named ``hallucinators.<k>``)."""
BANK_ID_KEY = "bank-id"
"""Config key (instruction) and metadata key ``bank_id`` (payload) of the bank's fingerprint."""
BPC_KEY = "shared-bpc"
"""Config key (instruction): bases per class each client distils through the shared bank."""
PREFIX = "hallucinators."


def bank_tensors(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The hallucinator tensors of a payload (``FactorizedDataset.tensors()`` names), on CPU, contiguous."""
    return {k: v.detach().cpu().contiguous() for k, v in sorted(tensors.items()) if k.startswith(PREFIX)}


def bank_id(bank: Mapping[str, Tensor]) -> str:
    """SHA-256 over the bank's names, dtypes, shapes and bytes: equal ids ⇔ the same bank."""
    h = hashlib.sha256()
    for name in sorted(bank):
        t = bank[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def bank_numel(bank: Mapping[str, Tensor]) -> int:
    return sum(int(t.numel()) for t in bank.values())


def as_hallucinator_init(bank: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The bank as ``distill(hallucinator_init=...)`` takes it (the bank's own state-dict names)."""
    if not bank or any(not k.startswith(PREFIX) for k in bank):
        raise ConfigError(f"a shared bank holds tensors named {PREFIX}<name>, got {sorted(bank)[:4]}")
    return {k[len(PREFIX):]: v for k, v in bank.items()}


def shared_bpc(*, budget_numbers: int, num_classes: int, basis_numel: int, bank_numbers: int, clients: int,
               extra: int = 0) -> int:
    """Bases per class of one client when ``clients`` share a bank of ``bank_numbers`` numbers.

    ``budget_numbers`` is one client's budget (``ipc × classes × image numbers``: what it would store with
    its own bank); its share of the bank and ``extra`` numbers it ships anyway (a learned learning rate) come
    off it, the rest goes to bases.
    """
    if clients < 1:
        raise ConfigError(f"a shared bank needs at least one client, got {clients}")
    budget = budget_numbers - math.ceil(bank_numbers / clients) - extra
    bpc = budget // (num_classes * basis_numel)
    if bpc < 1:
        raise ConfigError(f"a client budget of {budget_numbers} numbers leaves {budget} after its share of the "
                          f"shared bank ({bank_numbers} numbers over {clients} clients): less than one basis per class")
    return int(bpc)


def decode_bank(arrays) -> dict[str, Tensor]:
    """The bank of a train instruction's :data:`BANK_KEY` ArrayRecord (float32 ``hallucinators.*`` arrays)."""
    out = {}
    for name, a in arrays.items():
        if not name.startswith(PREFIX) or a.dtype != "float32":
            raise ConfigError(f"the server's bank has an unexpected array {name!r} ({a.dtype})")
        out[name] = torch.from_numpy(np.ascontiguousarray(a.numpy()))
    if not out:
        raise ConfigError("the server's bank is empty")
    return out
