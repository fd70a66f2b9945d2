"""The factorized replay memory: one :class:`~haba_core.FactorizedDataset` part per experience.

Budget
------
``mem_size`` is counted like Avalanche's ``Replay`` — a number of images — and converted to stored
numbers: ``budget = mem_size × c·h·w`` float32 numbers (``× 4`` bytes). Bases and hallucinators of all
parts together never exceed it (labels are implied by the layout and, as in ``haba_core.budget``, not
counted; a learned MTT learning rate is not kept in the memory).

Each part holds bases for the classes of its experience (a *group* = one class of one experience) and
its own hallucinator set. Before a new experience is distilled, :meth:`FactorizedMemory.plan` decides:

1. **Hallucinators** (factorized parameterizations only). They may take at most ``hallucinator_share``
   of the budget. Every part starts with up to ``hallucinators`` of them; when parts together would
   exceed the share, all parts are *water-filled* down to a common cap ``L`` (a part with fewer keeps
   what it has), and the new part gets ``min(hallucinators, L)``. Every part keeps at least one
   hallucinator, even if that exceeds the share (the *memory* budget is still respected: bases shrink).
   Dropped hallucinators are the last ones of a part's bank (indices ``L..``); hallucinators are
   interchangeable, so which ones go does not matter.
2. **Bases per class** ``bpc`` = what is left, divided equally over all groups seen so far,
   ``(budget − hallucinator numbers) // (groups × basis numbers)``, capped by the bases old groups still
   have (an old group can shrink but never grow: its real data are gone). Old groups keep the **first**
   ``bpc`` bases of their class in order of creation and drop the last ones.
3. **Leftover** numbers (too few for one more basis for *every* group — the memory stays class-balanced)
   buy extra hallucinators for the new part, up to ``hallucinators`` (this may exceed the share; the
   next rebalancing water-fills them down again). Whatever is still left stays unused.
4. If not even one basis per group plus one hallucinator per part fits, :class:`~haba_core.BudgetError`.

A class whose experience has fewer real images than ``bpc`` keeps only as many bases as it has real
images (more distilled bases than real images would add nothing); its unused share stays free.

Shared hallucinators (``share_hallucinators=True``)
--------------------------------------------------
One hallucinator bank for the whole stream, paid for once: the first experience learns it with its bases
(``min(hallucinators, share of the budget)`` of them, at least one); every later experience distils only
bases, composed through that bank frozen, and the memory is then a single part holding every class's
bases and the one bank. Bases per class are ``(budget − bank numbers) // (groups × basis numbers)`` as
above; step 3's leftover hallucinators apply to the first experience only. Old bases are never composed
through a bank they were not distilled with. All experiences must share one task label.
"""

from __future__ import annotations

import math
import random
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from haba_core import (BYTES_PER_NUMBER, BudgetError, ConfigError, FactorizedCollection, FactorizedDataset,
                       FormatError, HallucinatorConfig, StorageReport, basis_shape_for, read_json_document, save_parts,
                       storage_of, write_json)

MEMORY_FORMAT = "haba-cl-memory"
MEMORY_FORMAT_VERSION = 1
MEMORY_FILE = "memory.json"
FACTORIZED = ("haba", "idc-haba")


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without disturbing Python's, NumPy's or torch's (CPU and CUDA) global random state.

    A guard: distillation draws its randomness from its own seeded generator, but anything that touches a
    global generator inside the block (e.g. a user-supplied network factory) must not disturb the
    strategy's data loaders and models.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@dataclass
class MemoryPart:
    """The memory of one experience: its factorized data (global labels) and where it came from."""

    data: FactorizedDataset
    experience: int
    task_label: int
    classes: list[int]

    def bases_per_class(self) -> dict[int, int]:
        labels = self.data.synthetic.labels.detach().cpu()
        return {c: int((labels == c).sum()) for c in self.classes}

    @property
    def num_hallucinators(self) -> int:
        return self.data.num_hallucinators


@dataclass(frozen=True)
class MemoryPlan:
    """How the memory will look after adding one experience (see the module docstring)."""

    bpc: int                               # bases per group (cap) for old and new groups
    new_bases: dict[int, int]              # bases of each new class (bpc, or fewer for a small class)
    new_hallucinators: int                 # hallucinators of the new part (0 for plain)
    hallucinators: list[int]               # hallucinators of each existing part after rebalancing
    storage_numbers: int                   # planned stored numbers after adding
    budget_numbers: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["new_bases"] = {str(k): v for k, v in self.new_bases.items()}
        return d


class FactorizedMemory:
    """A class-balanced, size-bounded memory of factorized parts (one per experience).

    ``mem_size`` images of shape ``image_shape``; ``parameterization`` as in ``DistillConfig``
    (``haba``/``idc-haba`` factorized, ``plain``/``idc`` bases only); ``hallucinators`` is the most a part
    gets; ``hallucinator_share`` the largest fraction of the budget hallucinators may take;
    ``share_hallucinators`` keeps one bank for the whole stream (see the module docstring).
    """

    def __init__(self, mem_size: int, image_shape: Sequence[int], *, parameterization: str = "haba",
                 hallucinators: int = 5, hallucinator_config: HallucinatorConfig | None = None,
                 basis_channels: int | None = None, downsample: int | None = None,
                 hallucinator_share: float = 0.2, share_hallucinators: bool = False):
        if int(mem_size) < 1:
            raise BudgetError(f"mem_size must be at least 1 image, got {mem_size}")
        if not 0.0 <= float(hallucinator_share) <= 1.0:
            raise ConfigError(f"hallucinator_share must be in [0, 1], got {hallucinator_share}")
        self.mem_size = int(mem_size)
        self.image_shape = tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3:
            raise ConfigError(f"image_shape must be (c, h, w), got {self.image_shape}")
        self.parameterization = parameterization
        self.factorized = parameterization in FACTORIZED
        self.hallucinators = int(hallucinators) if self.factorized else 0
        if self.factorized and self.hallucinators < 1:
            raise ConfigError(f"{parameterization} needs at least one hallucinator per experience")
        self.hallucinator_config = hallucinator_config or HallucinatorConfig()
        self.basis_channels, self.downsample = basis_channels, downsample
        self.basis_shape = basis_shape_for(self.image_shape, parameterization, basis_channels, downsample)
        self.hallucinator_share = float(hallucinator_share)
        self.share_hallucinators = bool(share_hallucinators) and self.factorized
        self.parts: list[MemoryPart] = []
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ sizes
    @property
    def image_numel(self) -> int:
        return math.prod(self.image_shape)

    @property
    def basis_numel(self) -> int:
        return math.prod(self.basis_shape)

    @property
    def budget_numbers(self) -> int:
        return self.mem_size * self.image_numel

    @property
    def budget_bytes(self) -> int:
        return self.budget_numbers * BYTES_PER_NUMBER

    @property
    def hallucinator_numel(self) -> int:
        """Stored numbers of one hallucinator (0 for plain memories)."""
        if not self.factorized:
            return 0
        return storage_of(0, self.basis_shape, 1, self.image_shape, 1, self.hallucinator_config).hallucinators

    @property
    def num_classes(self) -> int:
        """1 + the largest class id stored (labels are global class ids)."""
        return 1 + max((c for p in self.parts for c in p.classes), default=-1)

    @property
    def seen_classes(self) -> list[int]:
        return sorted({c for p in self.parts for c in p.classes})

    def __len__(self) -> int:
        """Number of stored bases."""
        return sum(len(p.data) for p in self.parts)

    def storage(self) -> StorageReport:
        """Exact stored numbers and bytes of all parts together."""
        if not self.parts:
            return storage_of(0, self.basis_shape, 0, self.image_shape, 1, None)
        return FactorizedCollection([p.data for p in self.parts]).storage()

    def bases_per_class(self) -> dict[int, int]:
        """Stored bases of every seen class (summed over parts if a class recurs)."""
        out: dict[int, int] = {}
        for p in self.parts:
            for c, n in p.bases_per_class().items():
                out[c] = out.get(c, 0) + n
        return out

    def summary(self) -> dict[str, Any]:
        st = self.storage()
        return {"mem_size": self.mem_size, "budget_numbers": self.budget_numbers, "budget_bytes": self.budget_bytes,
                "stored_numbers": st.parameters, "stored_bytes": st.bytes, "parts": len(self.parts),
                "bases": len(self), "hallucinators": [p.num_hallucinators for p in self.parts],
                "bases_per_class": {str(k): v for k, v in sorted(self.bases_per_class().items())}}

    # ------------------------------------------------------------------ planning
    def _state(self) -> list[tuple[list[int], dict[int, int], int]]:
        return [(p.classes, p.bases_per_class(), p.num_hallucinators) for p in self.parts]

    def plan(self, new_classes: dict[int, int] | Sequence[int]) -> MemoryPlan:
        """Plan adding one experience with classes ``new_classes`` (class → number of real images)."""
        return self._plan(self._state(), new_classes)

    def check_stream(self, experiences: Sequence[dict[int, int] | Sequence[int]]) -> list[MemoryPlan]:
        """Dry-run the budget for a whole stream (classes, or class → real images, per experience).

        Raises :class:`~haba_core.BudgetError` before any training if some experience would not fit.
        """
        state = self._state()
        plans = []
        for exp in experiences:
            plan = self._plan(state, exp)
            plans.append(plan)
            hall = plan.hallucinators or [0] * len(state)
            state = [(cl, {c: min(n, plan.bpc) for c, n in cnt.items()}, h) for (cl, cnt, _), h in zip(state, hall)]
            state.append((sorted(plan.new_bases), dict(plan.new_bases), plan.new_hallucinators))
        return plans

    def _plan(self, state: list[tuple[list[int], dict[int, int], int]],
              new_classes: dict[int, int] | Sequence[int]) -> MemoryPlan:
        if not isinstance(new_classes, dict):
            new_classes = {int(c): 1 << 30 for c in new_classes}
        new_classes = {int(c): int(n) for c, n in new_classes.items()}
        if not new_classes:
            raise ConfigError("an experience without classes cannot be added to the memory")
        old_h = [h for _, _, h in state]
        old_counts = [n for _, counts, _ in state for n in counts.values()]
        groups = len(old_counts) + len(new_classes)
        cap = min(old_counts) if old_counts else None
        budget, bn, each = self.budget_numbers, self.basis_numel, self.hallucinator_numel
        notes: list[str] = []

        def fail(hall: int) -> BudgetError:
            what = f"{groups} bases (one per class seen so far)"
            if self.factorized:
                per = "shared by all experiences" if self.share_hallucinators else "one per experience"
                what += f" plus {hall} hallucinators ({per}, {each} numbers each)"
            need = groups * bn + hall * each
            return BudgetError(f"memory of {self.mem_size} images ({budget} numbers) is too small for one basis per "
                               f"class: it cannot hold {what} = {need} numbers; use mem_size >= "
                               f"{math.ceil(need / self.image_numel)}")

        if self.share_hallucinators and old_h:
            hall = new_h = old_h[0]  # the bank is fixed once the first experience has learned it
            hallucinators = list(old_h)
            bpc = (budget - hall * each) // (groups * bn)
            if bpc < 1:
                raise fail(hall)
        elif self.factorized:
            allowance = int(self.hallucinator_share * budget) // each
            level, hall, bpc = 1, len(old_h) + 1, 0
            for level in range(max(old_h + [self.hallucinators]), 0, -1):
                hall = sum(min(h, level) for h in old_h) + min(self.hallucinators, level)
                if hall > allowance and level > 1:
                    continue
                bpc = (budget - hall * each) // (groups * bn)
                if bpc >= 1:
                    break
            if bpc < 1:
                raise fail(1 if self.share_hallucinators else len(old_h) + 1)
            new_h = min(self.hallucinators, level)
            hallucinators = [min(h, level) for h in old_h]
            if new_h < self.hallucinators or any(a < b for a, b in zip(hallucinators, old_h)):
                notes.append(f"hallucinators capped at {level} per experience "
                             f"(share {self.hallucinator_share:.0%} of the memory)")
        else:
            hall, new_h, hallucinators = 0, 0, []
            bpc = budget // (groups * bn)
            if bpc < 1:
                raise fail(0)
        if cap is not None and bpc > cap:
            notes.append(f"bases per class held at {cap} (old classes cannot grow); "
                         f"{(bpc - cap) * groups * bn} numbers left unused")
            bpc = cap
        new_bases = {}
        for c, n_real in sorted(new_classes.items()):
            if n_real < 1:
                raise ConfigError(f"class {c} has no training images in this experience")
            new_bases[c] = min(bpc, n_real)
            if n_real < bpc:
                notes.append(f"class {c} has only {n_real} real images: it keeps {n_real} bases instead of {bpc}")
        kept_old = sum(min(n, bpc) for n in old_counts)
        storage = (kept_old + sum(new_bases.values())) * bn + hall * each
        if (self.factorized and new_h < self.hallucinators and budget - storage >= each
                and not (self.share_hallucinators and old_h)):
            # numbers the class-balanced bases cannot use go to more hallucinators of the new part
            extra = min(self.hallucinators - new_h, (budget - storage) // each)
            new_h, hall, storage = new_h + extra, hall + extra, storage + extra * each
            notes.append(f"{extra} more hallucinator(s) for the new experience from numbers the bases cannot use")
        if storage > budget:  # pragma: no cover - impossible by construction
            raise BudgetError(f"internal error: planned memory {storage} exceeds the budget {budget}")
        return MemoryPlan(bpc, new_bases, new_h, hallucinators, storage, budget, notes)

    # ------------------------------------------------------------------ updating
    def add(self, data: FactorizedDataset, classes: Sequence[int], *, experience: int, task_label: int = 0,
            plan: MemoryPlan | None = None) -> MemoryPart:
        """Add a distilled experience and rebalance the old parts to ``plan`` (computed here if omitted).

        ``data`` has local labels ``0..len(classes)-1``; ``classes[k]`` is the global id of label ``k``.
        """
        classes = [int(c) for c in classes]
        if tuple(data.image_shape) != self.image_shape:
            raise ConfigError(f"experience images have shape {tuple(data.image_shape)}, the memory holds "
                              f"{self.image_shape}")
        if tuple(data.synthetic.basis_shape) != tuple(self.basis_shape):
            raise ConfigError(f"distilled bases have shape {data.synthetic.basis_shape}, the memory expects "
                              f"{self.basis_shape}")
        if data.num_classes != len(classes) or len(set(classes)) != len(classes):
            raise ConfigError(f"the distilled experience has {data.num_classes} local classes but {len(classes)} "
                              "distinct global class ids were given")
        label_map = torch.tensor(classes, dtype=torch.long)
        global_labels = label_map[data.synthetic.labels.detach().cpu()]
        if plan is None:
            counts = {c: int((global_labels == c).sum()) for c in classes}
            plan = self.plan(counts)
        num_classes = max(self.num_classes, max(classes) + 1)
        if self.share_hallucinators and self.parts:
            candidate = [self._merged(data, classes, global_labels, plan, num_classes, int(experience),
                                      int(task_label))]
            return self._commit(candidate, classes, experience, plan)
        rebuilt: list[MemoryPart] = []
        for part, n_h in zip(self.parts, plan.hallucinators or [0] * len(self.parts)):
            keep = _first_per_class(part.data.synthetic.labels.detach().cpu(), {c: plan.bpc for c in part.classes})
            rebuilt.append(MemoryPart(_rebuild(part.data, keep=keep, num_hallucinators=n_h if self.factorized else None,
                                               num_classes=num_classes), part.experience, part.task_label,
                                      part.classes))
        keep = _first_per_class(global_labels, plan.new_bases)
        n_h = min(plan.new_hallucinators, data.num_hallucinators) if self.factorized else None
        new = MemoryPart(_rebuild(data, keep=keep, num_hallucinators=n_h, num_classes=num_classes,
                                  label_map=label_map), int(experience), int(task_label), classes)
        return self._commit(rebuilt + [new], classes, experience, plan)

    def _commit(self, candidate: list[MemoryPart], classes: list[int], experience: int,
                plan: MemoryPlan) -> MemoryPart:
        stored = FactorizedCollection([p.data for p in candidate]).storage().parameters
        if stored > self.budget_numbers:
            raise BudgetError(f"internal error: memory would hold {stored} numbers, more than its budget "
                              f"{self.budget_numbers}")
        self.parts = candidate
        self.history.append({"experience": int(experience), "classes": classes, "plan": plan.as_dict(),
                             **self.summary()})
        return candidate[-1]

    def shared_hallucinators(self) -> dict[str, Tensor] | None:
        """The stream's one hallucinator bank (``share_hallucinators``), as tensors for ``distill(hallucinator_init=)``;
        ``None`` before the first experience or when hallucinators are not shared."""
        if not (self.share_hallucinators and self.parts):
            return None
        bank = self.parts[0].data.synthetic.hallucinators
        return {k: v.detach().cpu().clone() for k, v in bank.state_dict().items()}

    def _merged(self, data: FactorizedDataset, classes: list[int], global_labels: Tensor, plan: MemoryPlan,
                num_classes: int, experience: int, task_label: int) -> MemoryPart:
        """The one shared-bank part with the old bases (each class cut to ``plan.bpc``) and the new ones."""
        (old,) = self.parts
        if task_label != old.task_label:
            raise ConfigError(f"shared hallucinators need one task label for the whole stream: experience "
                              f"{experience} has {task_label}, the memory {old.task_label}")
        bank = old.data.synthetic.hallucinators.state_dict()
        theirs = data.synthetic.hallucinators.state_dict() if data.synthetic.is_factorized else {}
        if set(theirs) != set(bank) or any(not torch.equal(theirs[k].detach().cpu(), v.detach().cpu())
                                           for k, v in bank.items()):
            raise ConfigError(f"experience {experience} was not distilled through the memory's shared hallucinators "
                              "(pass memory.shared_hallucinators() as distill(hallucinator_init=...) with "
                              "lr_hallucinators=0 and lr_affine=0)")
        keep_old = _first_per_class(old.data.synthetic.labels.detach().cpu(), {c: plan.bpc for c in old.classes})
        keep_new = _first_per_class(global_labels, plan.new_bases)
        merged = _rebuild(old.data, keep=keep_old, num_classes=num_classes,
                          append=(data.synthetic.bases.detach().cpu()[keep_new], global_labels[keep_new]))
        all_classes = list(dict.fromkeys(old.classes + classes))
        return MemoryPart(merged, experience, task_label, all_classes)

    def to(self, device: torch.device | str) -> "FactorizedMemory":
        for p in self.parts:
            p.data.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.parts[0].data.synthetic.bases.device if self.parts else torch.device("cpu")

    # ------------------------------------------------------------------ using
    def collection(self) -> FactorizedCollection:
        """All parts as one :class:`~haba_core.FactorizedCollection` (for training from memory only)."""
        if not self.parts:
            raise ConfigError("the memory is empty")
        return FactorizedCollection([p.data for p in self.parts])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` composed samples: a uniformly random stored basis through a random hallucinator of its part.

        Returns images (in the memory's input space), global labels and task labels, without gradients.
        """
        if not self.parts:
            raise ConfigError("the memory is empty")
        sizes = torch.tensor([len(p.data) for p in self.parts])
        idx = torch.randint(int(sizes.sum()), (int(n),), generator=generator)
        ends = torch.cumsum(sizes, 0)
        which = torch.bucketize(idx, ends, right=True)
        xs, ys, ts = [], [], []
        for i, part in enumerate(self.parts):
            local = idx[which == i] - (ends[i] - sizes[i])
            if local.numel() == 0:
                continue
            syn = part.data.synthetic
            dev = syn.bases.device
            local_d = local.to(dev)
            if syn.is_factorized:
                h = torch.randint(syn.num_hallucinators, (local.numel(),), generator=generator)
                x = syn.compose(local_d, h.to(dev))
            else:
                x = syn.compose(local_d)
            xs.append(x.detach())
            ys.append(syn.labels[local_d])
            ts.append(torch.full((local.numel(),), part.task_label, dtype=torch.long, device=dev))
        x, y, t = torch.cat(xs), torch.cat(ys), torch.cat(ts)
        if device is not None:
            x, y, t = x.to(device), y.to(device), t.to(device)
        return x, y, t

    # ------------------------------------------------------------------ persistence
    def describe(self) -> dict[str, Any]:
        return {"format": MEMORY_FORMAT, "format_version": MEMORY_FORMAT_VERSION, "mem_size": self.mem_size,
                "image_shape": list(self.image_shape), "parameterization": self.parameterization,
                "hallucinators": self.hallucinators, "hallucinator_share": self.hallucinator_share,
                "share_hallucinators": self.share_hallucinators, "hallucinator": asdict(self.hallucinator_config), "basis_channels": self.basis_channels,
                "downsample": self.downsample, "budget_numbers": self.budget_numbers,
                "budget_bytes": self.budget_bytes, "storage": self.storage().as_dict(),
                "parts": [{"dir": f"part-{i:03d}", "experience": p.experience, "task_label": p.task_label,
                           "classes": p.classes} for i, p in enumerate(self.parts)],
                "history": self.history}

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """``memory.json`` plus one ``part-NNN/`` (``factorized.safetensors`` + ``meta.json``) per part."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_parts([p.data for p in self.parts], directory)
        meta = self.describe()
        if extra:
            meta["extra"] = extra
        write_json(directory / MEMORY_FILE, meta, default=str)
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> "FactorizedMemory":
        """Load a saved memory, checking its format and that it is within its budget."""
        directory = Path(directory)
        path = directory / MEMORY_FILE
        meta = read_json_document(path, MEMORY_FORMAT, "a saved HaBa replay memory")
        if int(meta.get("format_version", 0)) > MEMORY_FORMAT_VERSION:
            raise FormatError(f"{directory} was written by a newer toolkit")
        try:
            mem = cls(meta["mem_size"], meta["image_shape"], parameterization=meta["parameterization"],
                      hallucinators=max(1, int(meta["hallucinators"])),
                      hallucinator_config=HallucinatorConfig(**meta.get("hallucinator", {})),
                      basis_channels=meta.get("basis_channels"), downsample=meta.get("downsample"),
                      hallucinator_share=meta.get("hallucinator_share", 0.2),
                      share_hallucinators=_flag(meta.get("share_hallucinators", False), "share_hallucinators"))
            mem.hallucinators = int(meta["hallucinators"])
            parts_meta = list(meta["parts"])
            if mem.share_hallucinators and len(parts_meta) > 1:
                raise FormatError(f"{path}: a memory with shared hallucinators has one part, this one lists "
                                  f"{len(parts_meta)}")
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{path} lacks or garbles a required field: {exc}") from exc
        with preserved_rng():
            for pm in parts_meta:
                data = FactorizedDataset.load(directory / pm["dir"], device=device)
                mem.parts.append(MemoryPart(data, int(pm["experience"]), int(pm["task_label"]),
                                            [int(c) for c in pm["classes"]]))
        mem.history = list(meta.get("history", []))
        if mem.parts and mem.storage().parameters > mem.budget_numbers:
            raise FormatError(f"{directory}: stored memory exceeds its own budget of {mem.mem_size} images")
        return mem


# ---------------------------------------------------------------------- helpers
def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise FormatError(f"memory.json: {name} must be true or false, got {value!r}")
    return value


def _first_per_class(labels: Tensor, keep_per_class: dict[int, int]) -> Tensor:
    """Indices of the first ``keep_per_class[c]`` rows of every class ``c`` (creation order kept)."""
    keep = []
    seen: dict[int, int] = {}
    for i, c in enumerate(labels.tolist()):
        n = seen.get(c, 0)
        if n < keep_per_class.get(c, 0):
            keep.append(i)
        seen[c] = n + 1
    return torch.tensor(keep, dtype=torch.long)


def _rebuild(data: FactorizedDataset, *, keep: Tensor | None = None, num_hallucinators: int | None = None,
             num_classes: int | None = None, label_map: Tensor | None = None,
             append: tuple[Tensor, Tensor] | None = None) -> FactorizedDataset:
    """A copy of ``data`` with only the bases ``keep``, the first ``num_hallucinators`` hallucinators,
    labels mapped through ``label_map``, ``append = (bases, global labels)`` added after the kept bases and
    ``num_classes`` classes — through the core's own format (``tensors`` / ``describe`` / ``from_tensors``),
    so every shape is validated again."""
    device = data.synthetic.bases.device
    tensors = {k: v.detach().cpu().clone() for k, v in data.tensors().items()}
    meta = data.describe()
    tensors.pop("lr", None)  # a learned lr is not part of the replay memory
    labels = tensors["labels"]
    if label_map is not None:
        labels = label_map.to(labels.device)[labels]
    if keep is not None:
        keep = keep.to(torch.long)
        tensors["bases"] = tensors["bases"][keep].contiguous()
        labels = labels[keep]
    if append is not None:
        tensors["bases"] = torch.cat([tensors["bases"], append[0]]).contiguous()
        labels = torch.cat([labels, append[1].to(labels.device)])
    tensors["labels"] = labels.contiguous()
    n_h = int(meta["num_hallucinators"])
    if num_hallucinators is not None and n_h > 0:
        if num_hallucinators < 1:
            raise BudgetError("a factorized part must keep at least one hallucinator")
        n_h = min(n_h, int(num_hallucinators))
        for k in list(tensors):
            if k.startswith("hallucinators."):
                tensors[k] = tensors[k][:n_h].contiguous()
    if num_classes is None:
        num_classes = int(meta["num_classes"])
    meta.update(num_bases=int(tensors["bases"].shape[0]), num_hallucinators=n_h, num_classes=int(num_classes),
                classes=[str(i) for i in range(int(num_classes))], learned_lr=None)
    with preserved_rng():
        return FactorizedDataset.from_tensors(tensors, meta, device=device)
