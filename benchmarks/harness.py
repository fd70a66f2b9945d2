"""Shared benchmark harness: arguments, seeds, timing, memory, JSON results and the BENCHMARKS.md tables.

Every study (``benchmarks/<study>.py``) uses these helpers so that all of them

* take the same options (:func:`add_common_args`: ``--device``, ``--seeds``, ``--quick``, ``--out``,
  ``--data-root``, ``--threads``, ``--md``; call :func:`configure_threads` after parsing),
* report every measurement as mean ± std over seeds with the same columns (:func:`summarize`,
  :data:`STANDARD_COLUMNS`), with the stored bytes and IPC-equivalent of the synthetic set on every row
  (:func:`storage_columns`) so that nobody compares unequal budgets,
* write ``<out>/<name>.json`` atomically (:func:`write_results`) and their own section of
  ``BENCHMARKS.md`` between ``<!-- name:begin -->`` / ``<!-- name:end -->`` markers
  (:func:`update_benchmarks_md`), with the date, machine and exact command.

Timing and memory on a shared machine are noisy: :func:`machine_info` and :func:`summarize` record the
load average next to each number.

Peak memory (:func:`peak_memory`, :class:`MemoryMonitor`):

* CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus the memory
  allocated at the start — the peak of live tensors, excluding the caching allocator's reserve.
* CPU: ``tracemalloc`` does not see torch's allocations, so we use the kernel's resident-set high-water
  mark. At the start we ``gc.collect()``, hand freed heap memory back (glibc ``malloc_trim(0)``), reset
  the process's peak RSS by writing ``5`` to ``/proc/self/clear_refs`` (Linux ≥ 4.0) and read ``VmRSS``;
  at the end ``VmHWM - VmRSS(start)`` is the peak extra resident memory while the function ran. This is
  exact up to page granularity and costs nothing while the function runs. Where ``clear_refs`` is not
  writable (non-Linux, restricted containers) a background thread samples the RSS every millisecond with
  ``psutil`` instead (``method`` says which; sampling can miss very short peaks). The number includes
  everything the process touches (temporary tensors, oneDNN scratch space, Python objects) and memory
  reused from the allocator's free lists is not counted twice, so treat it as the working-set growth.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as _dt
import gc
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from haba_core import ConfigError, runtime
from haba_core.config_layers import parse_set
from haba_core.atomic import atomic_path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"
DEFAULT_DATA_ROOT = (REPO_ROOT / ".." / "shared" / "data").resolve()
DEFAULT_MD = REPO_ROOT / "BENCHMARKS.md"

#: Columns every study's tables carry (after their own descriptive columns).
STANDARD_COLUMNS = ["stored_bytes", "ipc_equivalent", "value", "n", "load"]

MD_INTRO = """# Benchmarks

Results of the studies in `benchmarks/` (see `benchmarks/README.md` for how to run each one). Every
study reports mean ± std over seeds; every table row states the stored bytes of the synthetic set and
its IPC-equivalent (stored float32 numbers / (classes × c·h·w)), so that rows compare equal budgets.
Each section records the date, machine and exact command that produced it; the JSON behind it is
written to `benchmarks/results/` (git-ignored: re-run the study to regenerate it).
"""


# ---------------------------------------------------------------------------------------------- arguments
def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by every study."""
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where to run (auto = CUDA when available)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1); results are mean ± std")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="first seed (runs seeds first..first+N-1; lets seeds run in parallel processes)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings (a minute or two) to check the script still runs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for the JSON results")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                        help="datasets directory (default ../shared/data relative to the repo root)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op CPU threads (default 1: on a shared, oversubscribed CPU, OpenMP "
                             "with 2+ threads spin-waits and runs 2-100x slower; use the core count on an "
                             "idle machine, 0 = torch's default)")
    parser.add_argument("--md", type=Path, default=None,
                        help="Markdown file whose section is updated (default BENCHMARKS.md at the repo root; "
                             "--quick runs leave it alone unless --md is given)")


def configure_threads(args: argparse.Namespace) -> int:
    """Apply ``--threads`` (0 keeps torch's default); returns the thread count in use."""
    n = getattr(args, "threads", 0) or 0
    if n > 0:
        torch.set_num_threads(n)
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
    return torch.get_num_threads()


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``--set`` items the way every entry point reads them (:func:`haba_core.config_layers.parse_set`, keys as
    written): ``["iterations=200", "net-width=64"]`` → ``{"iterations": 200, "net-width": 64}``; a malformed item
    ends the study with one line."""
    try:
        return parse_set(items)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


def seed_list(args: argparse.Namespace) -> list[int]:
    if args.seeds < 1:
        raise SystemExit("--seeds must be >= 1")
    first = getattr(args, "first_seed", 0) or 0
    return list(range(first, first + args.seeds))


def resolve_device(name: str) -> torch.device:
    """:func:`haba_core.runtime.resolve_device`, with a bad ``--device`` ending the study with one line."""
    try:
        return runtime.resolve_device(name)
    except ConfigError as exc:
        raise SystemExit(f"--device: {exc}") from None


def markdown_path(args: argparse.Namespace) -> Path | None:
    """Where a study should write its section: ``--md``, else BENCHMARKS.md unless ``--quick``."""
    if args.md is not None:
        return args.md
    return None if args.quick else DEFAULT_MD


# ---------------------------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev + ("+dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def load_average() -> tuple[float, float, float]:
    try:
        return tuple(round(v, 2) for v in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return (float("nan"),) * 3  # type: ignore[return-value]


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def machine_info(device: torch.device | str) -> dict:
    """CPU model, cores, torch version, device name, load average, date (UTC ISO)."""
    device = torch.device(device)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        import psutil
        mem = psutil.virtual_memory().total
    except Exception:  # noqa: BLE001
        mem = None
    info = {
        "date": utc_now(),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "memory_bytes": mem,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model(),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "load_average": load_average(),
        "niceness": os.nice(0) if hasattr(os, "nice") else None,
        "git": _git_revision(),
    }
    return info


def machine_line(info: dict) -> str:
    """One line for BENCHMARKS.md."""
    dev = info["device_name"] if info["device"].startswith("cuda") else f"CPU only ({info['cpu_model']})"
    return (f"{dev}; {info['cpu_cores_usable']} usable cores, torch {info['torch']} "
            f"({info['torch_threads']} threads), Python {info['python']}, git {info.get('git')}")


# ---------------------------------------------------------------------------------------------- statistics
def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = [float(v) for v in values]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def fmt_ms(mean: float, std: float, digits: int = 1) -> str:
    """``"12.3 ± 0.4"``."""
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def summarize(values: Sequence[float], scale: float = 1.0, digits: int = 1, loads: Sequence[float] = ()) -> dict:
    """Standard measurement columns: ``mean``, ``std``, ``value`` ("m ± s"), ``n``, ``values``, ``load``.

    ``scale`` multiplies the raw values (1000 for seconds → ms). ``loads`` are the 1-minute load averages
    seen while measuring; their mean goes into ``load``.
    """
    scaled = [float(v) * scale for v in values]
    m, s = mean_std(scaled)
    return {"mean": m, "std": s, "value": fmt_ms(m, s, digits), "n": len(scaled), "values": scaled,
            "load": round(statistics.fmean(loads), 2) if loads else load_average()[0]}


def storage_columns(fd: Any) -> dict:
    """Equal-bytes bookkeeping from ``FactorizedDataset.storage()`` (or a ``StorageReport``)."""
    report = fd.storage() if hasattr(fd, "storage") else fd
    return {"stored_bytes": int(report.bytes), "ipc_equivalent": round(float(report.ipc_equivalent), 3)}


def repeat_seeds(fn: Callable[[int], Any], seeds: Iterable[int]) -> list:
    """``[fn(seed) for seed in seeds]``."""
    return [fn(int(s)) for s in seeds]


# ---------------------------------------------------------------------------------------------- timing
def synchronize(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


class Timer:
    """``with Timer(device) as t: ...`` → ``t.seconds`` (wall time; synchronises CUDA around the block)."""

    def __init__(self, device: torch.device | str | None = None):
        self.device = device
        self.seconds = float("nan")
        self.load = float("nan")

    def __enter__(self) -> "Timer":
        synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._t0
        self.load = load_average()[0]


# ---------------------------------------------------------------------------------------------- memory
def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class MemoryMonitor:
    """Peak extra memory between :meth:`start` (or the last :meth:`rebase`) and :meth:`stop`.

    See the module docstring for the method. ``rebase()`` may be called while the measured code runs
    (e.g. from a distillation ``on_step`` callback after a warm-up iteration) to measure only what follows.
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.method = ""
        self.baseline = 0
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()
        self._sampled_peak = 0

    def _rss(self) -> int:
        kib = _status_kib("VmRSS")
        if kib is not None:
            return kib * 1024
        import psutil
        return psutil.Process().memory_info().rss

    def rebase(self) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
            self.method = "cuda max_memory_allocated"
            return
        gc.collect()
        _malloc_trim()
        if _reset_hwm() and _status_kib("VmHWM") is not None:
            self.method = "VmHWM after clear_refs (peak RSS growth)"
            self.baseline = self._rss()
        else:
            self.method = "psutil RSS sampled every 1 ms (peak RSS growth)"
            self.baseline = self._rss()
            self._sampled_peak = self.baseline
            if self._sampler is None:
                self._stop.clear()
                self._sampler = threading.Thread(target=self._sample, daemon=True)
                self._sampler.start()

    def _sample(self) -> None:
        import psutil
        proc = psutil.Process()
        while not self._stop.is_set():
            self._sampled_peak = max(self._sampled_peak, proc.memory_info().rss)
            time.sleep(0.001)

    def start(self) -> "MemoryMonitor":
        self.rebase()
        return self

    def stop(self) -> int:
        """Peak bytes above the baseline."""
        if self.device.type == "cuda":
            synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device) - self.baseline)
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            self._sampler = None
            peak = max(self._sampled_peak, self._rss())
        else:
            peak = (_status_kib("VmHWM") or 0) * 1024
        return max(0, int(peak - self.baseline))


def peak_memory(fn: Callable[[], Any], device: torch.device | str) -> tuple[Any, int]:
    """Run ``fn()`` and return ``(result, peak_bytes)`` — peak extra memory while it ran (see module doc)."""
    mon = MemoryMonitor(device).start()
    try:
        result = fn()
    finally:
        peak = mon.stop()
    return result, peak


# ---------------------------------------------------------------------------------------------- output
def _fmt_cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 0.1 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: list[dict], columns: Sequence[str | tuple[str, str]]) -> str:
    """A GitHub table; ``columns`` are keys or ``(key, header)`` pairs; missing cells print ``–``."""
    cols = [(c, c) if isinstance(c, str) else c for c in columns]
    lines = ["| " + " | ".join(_fmt_cell(h) for _, h in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt_cell(row.get(k)) for k, _ in cols) + " |")
    return "\n".join(lines)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.device):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return repr(obj)


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_results(name: str, rows: list[dict], meta: dict, out_dir: str | Path) -> Path:
    """Write ``{name, meta, rows}`` to ``out_dir/name.json`` atomically; ``meta`` gains command/date if absent."""
    meta = dict(meta)
    meta.setdefault("command", command_line())
    meta.setdefault("date", utc_now())
    path = Path(out_dir) / f"{name}.json"
    _atomic_write_text(path, json.dumps({"name": name, "meta": meta, "rows": rows}, indent=2,
                                        default=_json_default) + "\n")
    return path


@contextlib.contextmanager
def _locked(path: Path):
    lock = path.with_name(f".{path.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        try:
            import fcntl
            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX
            pass
        yield


def update_benchmarks_md(section: str, markdown: str, path: str | Path = "BENCHMARKS.md") -> None:
    """Replace the text between ``<!-- {section}:begin -->`` and ``<!-- {section}:end -->``.

    A relative ``path`` is taken from the repository root. The file is created with a short intro if
    missing, the section appended at the end if absent; the write is atomic and serialised with a lock
    file so that studies finishing together do not clobber each other.
    """
    path = Path(path)
    if not path.is_absolute():
        path = REPO_ROOT / path
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    with _locked(path):
        text = path.read_text(encoding="utf-8") if path.exists() else MD_INTRO
        i, j = text.find(begin), text.find(end)
        if i >= 0 and j > i:
            text = text[:i] + block + text[j + len(end):]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        _atomic_write_text(path, text)


def publish(section: str, markdown: str, json_path: Path, wall_seconds: float, args: argparse.Namespace) -> None:
    """Print a study's table and JSON path, and rewrite its section of BENCHMARKS.md unless the study says not to."""
    print(markdown)
    print(f"\nJSON: {json_path}  ({wall_seconds:.0f}s)", file=sys.stderr)
    md_path = markdown_path(args)
    if md_path is not None:
        update_benchmarks_md(section, markdown, md_path)


def command_line() -> str:
    """The command that was run, as ``python -m package.module args`` when started with ``-m``."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    args = shlex.join(sys.argv[1:])
    if spec is not None and spec.name:
        name = spec.name[:-len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        cmd = f"python -m {name}"
    else:
        cmd = "python " + shlex.quote(sys.argv[0])
    return f"{cmd} {args}".strip()
