"""``haba-distill``: distil a dataset (HaBa by default), evaluate it, compare with plain at equal bytes.

See ``docs/cli.md`` for every option, the output directory layout and examples.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from haba_core import (KNOWN_NETWORKS, RECIPES, ConfigError, DistillConfig, DistillationInterrupted, EvalConfig,
                       FactorizedDataset, ImageDataset, NonFiniteLossError, Preprocessor, UnknownNameError,
                       __version__, config_plan, distill, evaluate, load_dataset, validation_split)
from haba_core.atomic import write_json
from haba_core.budget import RULES as BUDGET_RULES
from haba_core.config_layers import SET_SYNTAX
from haba_core.distillation.precision import PRECISIONS
from haba_core.loss_terms import active_loss_terms
from haba_core.objectives import check_buffer_split, objective_names, objective_spec, read_buffer_info
from haba_core.runtime import resolve_device

from . import images, report
from .cli_parser import OneLineParser
from .cli_errors import EXIT_INTERRUPTED, UsageError, handle_errors
from .interrupt import StopFlag, sigint_handler
from .distill_settings import QUICK_PROFILE, RunSettings, resolve
from .outdir import RunDirectory, default_out_dir, has_checkpoint
from .preflight import bank_share_note, check_budget, unused_budget_note
from .presets import describe_preset, list_presets
from .progress import DistillProgress, EvalProgress

PROG = "haba-distill"
BASELINE_DIR = {"haba": "baseline-plain", "idc-haba": "baseline-idc"}
BASELINE_PARAM = {"haba": "plain", "idc-haba": "idc"}
_D = DistillConfig()
_R = RunSettings()


def _default(text: str) -> str:
    return f"(default: {text})"


def _by_dataset(quick: Any, other: Any) -> str:
    return _default(f"digits: {quick}; else {other}")


def build_parser() -> argparse.ArgumentParser:
    q = QUICK_PROFILE
    p = OneLineParser(
        prog=PROG, allow_abbrev=False,
        description="Distil a dataset into bases + hallucinators (HaBa), evaluate it on the test split, and "
                    "compare it with plain synthetic images at the same storage. With no arguments: the "
                    "embedded 8x8 digits, DM, HaBa vs plain at IPC 3 (about two minutes on 2 CPU cores).",
        epilog="Settings are layered: built-in defaults < --recipe < --config file < --set KEY=VALUE < flags. Defaults "
               f"marked 'digits:' apply to the digits dataset (quick start: iterations {q['iterations']}, "
               f"net width {q['net_width']}, identity-initialised hallucinators with lr 0.01, {q['threads']} "
               "thread); other datasets start from the literature defaults shown second. "
               "Exit status: 0 ok, 2 error, 130 interrupted.")
    g = p.add_argument_group("data and output")
    g.add_argument("--dataset", help="digits | mnist | fashion-mnist | cifar10 | cifar100 | svhn | "
                                     f"imagefolder:<dir-or-.tar.gz> {_default(_R.dataset)}")
    g.add_argument("--data-root", metavar="DIR",
                   help="directory holding the dataset files (default: $HABA_DATA_ROOT or ./data)")
    g.add_argument("--out", "-o", metavar="DIR",
                   help="output directory (default: runs/haba-distill-<dataset>-<timestamp>)")
    g.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out from its checkpoint (default: off)")
    g.add_argument("--overwrite", action="store_true",
                   help="delete an existing non-empty --out first (default: off; refuse to touch it)")
    g = p.add_argument_group("configuration files")
    g.add_argument("--recipe", choices=sorted(RECIPES),
                   help="starting point below --config/--set/flags: 'paper' (exactly the paper: random hallucinator "
                        "init, lr_hallucinators = lr_bases, adversary after each update), 'paper-pca' (the paper plus "
                        "the pca init and lr_bases/100 for hallucinators under DM) or 'modest' "
                        "(down-sampled bases, no adversary, Adam for hallucinators; BENCHMARKS.md) or 'fixed-bank' (modest "
                        "with the PCA hallucinator bank kept fixed and one hallucination per basis per step: ahead of "
                        "IDC on validation under DM at IPC-11, not at IPC-2 or under DC, where --param idc is) "
                        "(default: the config file's recipe key — the presets say paper —, else modest; paper on digits)")
    g.add_argument("--config", metavar="FILE|PRESET",
                   help="TOML file or preset name (see --list-presets) (default: none)")
    g.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="set any configuration key, e.g. --set mtt.syn_steps=30 --set hallucinator.depth=2; "
                        f"{SET_SYNTAX} (default: none)")
    g.add_argument("--list-presets", action="store_true", help="list the shipped presets and exit")
    g = p.add_argument_group("distillation")
    g.add_argument("--method", choices=list(objective_names()),
                   help=f"distillation objective {_default(_D.objective)}")
    g.add_argument("--param", choices=["haba", "plain", "idc", "idc-haba"],
                   help="parameterization of the synthetic set (default: the recipe's: idc-haba for modest, haba for "
                        "paper)")
    b = g.add_mutually_exclusive_group()
    b.add_argument("--ipc", type=int, help=f"storage budget in images per class {_by_dataset(q['ipc'], _D.ipc)}")
    b.add_argument("--bpc", type=int, help="explicit bases per class instead of an IPC budget (default: none)")
    g.add_argument("--hallucinators", type=int,
                   help=f"number of hallucinators requested {_default(_D.hallucinators)}")
    g.add_argument("--budget-rule", choices=BUDGET_RULES,
                   help="IPC → (bases, hallucinators): never exceed the budget, the paper's BPC = IPC−1 "
                        "with all hallucinators, or fill: never exceed it, with the number of hallucinators "
                        "(up to those requested) that leaves the least unused where exact wastes >= 5%% "
                        "(default: the recipe's: fill for modest and fixed-bank, exact for paper and paper-pca)")
    g.add_argument("--iterations", type=int,
                   help=f"distillation iterations {_by_dataset(q['iterations'], _D.iterations)}")
    g.add_argument("--lr-bases", type=float,
                   help="learning rate of the bases (default: per objective: "
                        + ", ".join(f"{n} {objective_spec(n).lr_bases:g}" for n in objective_names()) + ")")
    g.add_argument("--lr-hallucinators", type=float, help="learning rate of the hallucinators "
                   + _by_dataset(q["lr_hallucinators"], "modest: 1e-4 (Adam); paper: the bases learning rate"))
    g.add_argument("--zca", action=argparse.BooleanOptionalAction,
                   help=f"ZCA-whiten the data {_default(str(_D.zca).lower())}")
    g.add_argument("--network", help=f"distillation network {_default(_D.network)}")
    g.add_argument("--net-width", type=int, help=f"ConvNet width {_by_dataset(q['net_width'], _D.net_width)}")
    g.add_argument("--net-depth", type=int, help=f"ConvNet depth {_default(_D.net_depth)}")
    g.add_argument("--buffer", metavar="DIR",
                   help="expert trajectories for --method mtt, made by haba-buffer (default: none). With a factorized "
                        "set each unrolled MTT step composes its mtt.batch_syn bases (default: all) through one random "
                        "hallucinator each, as the paper and its code; --set mtt.composition=pairs unrolls on the "
                        "step's hallucinators_per_step x bases composed images instead (2x the work per step)")
    g.add_argument("--checkpoint-every", type=int,
                   help=f"iterations between checkpoints {_default(_D.checkpoint_every)}")
    g.add_argument("--seed", type=int, help=f"random seed {_default(_D.seed)}")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], help=f"where to compute {_default(_D.device)}")
    g.add_argument("--precision", choices=list(PRECISIONS),
                   help="bf16: the distillation and adversary networks' forward passes under bfloat16 autocast "
                        "(1.3-1.7x the iterations per second at width 128 on CPUs with AMX/AVX512-BF16; bases and hallucinators "
                        "stay float32; no accuracy change measured under DM, lower under MTT); fp32: the paper "
                        f"{_default(_D.precision)}")
    g = p.add_argument_group("evaluation")
    g.add_argument("--compare", action=argparse.BooleanOptionalAction,
                   help="also distil and evaluate the unfactorized baseline (plain for haba, idc for idc-haba) at "
                        f"the same budget, into OUT/baseline-plain {_default(str(_R.compare).lower())}")
    g.add_argument("--eval-arch", help=f"evaluation network {_default(_R.eval_arch)}")
    g.add_argument("--eval-epochs", type=int, help=f"training epochs per evaluation run {_default(_R.eval_epochs)}")
    g.add_argument("--eval-runs", type=int, help=f"evaluation runs (fresh networks; 0 = no evaluation) {_default(_R.eval_runs)}")
    g.add_argument("--eval-dsa", action=argparse.BooleanOptionalAction,
                   help=f"DSA augmentation while training evaluation networks {_default(str(_R.eval_dsa).lower())}")
    g.add_argument("--eval-lr", type=float,
                   help="evaluation learning rate (default: the learned MTT lr on the network it was learned through, "
                        "else 0.01; --set eval_learned_lr_on=every-network applies it to any --eval-arch)")
    g.add_argument("--val-per-class", type=int,
                   help="distil on the training set minus a fixed, seeded validation split of this many images per "
                        "class and score the same evaluation networks on it beside the test split: choose recipes "
                        f"and settings on the validation column, report the test column {_default(_R.val_per_class)}")
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print metrics.json to stdout and nothing else (default: off)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bars or messages (default: off)")
    g.add_argument("--no-images", action="store_true",
                   help="write no bases.png / hallucinated.png (saves seconds per run; default: write them)")
    g.add_argument("--threads", type=int,
                   help=f"CPU threads for PyTorch {_by_dataset(q['threads'], 'PyTorch default')}")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


# argparse dest → configuration key (TOML layout)
FLAG_KEYS = {
    "dataset": "dataset", "data_root": "data_root", "method": "objective", "param": "parameterization",
    "ipc": "ipc", "bpc": "bpc", "hallucinators": "hallucinators", "budget_rule": "budget_rule",
    "iterations": "iterations", "lr_bases": "lr_bases", "lr_hallucinators": "lr_hallucinators", "zca": "zca",
    "network": "network", "net_width": "net_width", "net_depth": "net_depth", "buffer": "mtt.buffer",
    "checkpoint_every": "checkpoint_every", "seed": "seed", "device": "device", "precision": "precision", "compare": "compare",
    "eval_arch": "eval_arch", "eval_epochs": "eval_epochs", "eval_runs": "eval_runs", "eval_dsa": "eval_dsa",
    "eval_lr": "eval_lr", "threads": "threads", "val_per_class": "val_per_class",
}


def flags_from(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, as a (nested) configuration layer."""
    out: dict[str, Any] = {}
    for dest, key in FLAG_KEYS.items():
        value = getattr(args, dest)
        if value is None:
            continue
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def resume_command(argv: list[str], out: Path) -> str:
    """The command that continues this run: same arguments, ``--out OUT --resume``."""
    kept, skip = [], False
    for tok in argv:
        if skip:
            skip = False
            continue
        if tok in ("--out", "-o"):
            skip = True
            continue
        if tok.startswith("--out=") or tok in ("--resume", "--overwrite"):
            continue
        kept.append(tok)
    return shlex.join([PROG, *kept, "--out", str(out), "--resume"])


class Console:
    """Messages on stderr unless --quiet; results on stdout (or stderr when --json owns stdout)."""

    def __init__(self, quiet: bool, json_mode: bool):
        self.quiet, self.json_mode = quiet, json_mode

    def info(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def result(self, text: str) -> None:
        if self.json_mode:
            self.info(text)
        else:
            print(text, flush=True)


def _label(cfg: DistillConfig) -> str:
    return f"{cfg.objective.upper()} {cfg.parameterization}"


def _setup(result: FactorizedDataset) -> str:
    s = result.synthetic
    per_class = s.num_bases // max(1, s.num_classes)
    if s.is_factorized:
        return f"{per_class} {'basis' if per_class == 1 else 'bases'}/class × {s.num_hallucinators} halluc."
    return f"{per_class} {'image' if per_class == 1 else 'images'}/class"


def _check_buffer(cfg: DistillConfig, train: ImageDataset, val_per_class: int) -> None:
    """Refuse an expert buffer made for another dataset, preprocessing or validation split (before any work)."""
    if not objective_spec(cfg.objective).needs_trajectories:
        return
    if not cfg.mtt.buffer:
        raise ConfigError("trajectory matching needs an expert buffer: pass --buffer DIR "
                                   "(create one with haba-buffer)")
    info = read_buffer_info(cfg.mtt.buffer)
    for key, want in (("dataset", train.name), ("zca", cfg.zca)):
        if key in info and info[key] != want:
            raise ConfigError(f"expert buffer {cfg.mtt.buffer} was made with {key}={info[key]!r} but this run "
                                       f"uses {key}={want!r}; make a matching buffer with haba-buffer")
    check_buffer_split(info, val_per_class, where=f"expert buffer {cfg.mtt.buffer}")


def _check_network(name: str, option: str) -> None:
    if name.lower() not in {n.lower() for n in KNOWN_NETWORKS} | {"convnetbn", "resnet18bn"}:
        raise UnknownNameError(f"unknown architecture {name!r} for {option}; known: {', '.join(KNOWN_NETWORKS)}")


def _copy_config(cfg: DistillConfig, **changes: Any) -> DistillConfig:
    d = cfg.to_dict()
    d.update(changes)
    return DistillConfig.from_dict(d)


def _baseline_config(cfg: DistillConfig, result: FactorizedDataset, checkpoint: Path) -> DistillConfig:
    """The unfactorized counterpart at the same budget (IPC; with --bpc the nearest IPC to its storage)."""
    ipc = cfg.ipc if cfg.bpc is None else max(1, round(result.storage().ipc_equivalent))
    param = BASELINE_PARAM[cfg.parameterization]
    # baseline images have the image's channels; plain ones its size too (idc keeps the down-sampling)
    return _copy_config(cfg, parameterization=param, ipc=ipc, bpc=None, basis_channels=None,
                        downsample=cfg.downsample if param == "idc" else None, per_class_hallucinators=False,
                        checkpoint_dir=str(checkpoint))


def _metrics(label: str, result: FactorizedDataset, ev, cfg: DistillConfig, eval_cfg: EvalConfig,
             run: dict[str, Any], out_dir: Path, distill_s: float, eval_s: float) -> dict[str, Any]:
    st = result.storage()
    s = result.synthetic
    timings = dict(result.meta.get("timings", {}))
    return {
        "method": label,
        "setup": _setup(result),
        "dataset": result.meta.get("dataset"),
        "objective": cfg.objective,
        "parameterization": cfg.parameterization,
        "accuracy_mean": ev.mean if ev is not None else None,
        "accuracy_std": ev.std if ev is not None else None,
        "accuracies": list(ev.accuracies) if ev is not None else [],
        **_val_metrics(ev),
        "runs": len(ev.accuracies) if ev is not None else 0,
        "eval_arch": eval_cfg.arch,
        "eval_epochs": eval_cfg.epochs,
        "eval_lr": ev.extra.get("lr") if ev is not None else None,
        "stored_parameters": st.parameters,
        "stored_bytes": st.bytes,
        "ipc_equivalent": st.ipc_equivalent,
        "storage": st.as_dict(),
        "num_bases": s.num_bases,
        "num_hallucinators": s.num_hallucinators,
        "budget": result.meta.get("budget"),
        "learned_lr": result.learned_lr,
        "timings": {"distill_s": distill_s, "eval_s": eval_s,
                    "iteration_s": timings.get("iteration_s"), "iterations_run": timings.get("iterations_run")},
        "output_dir": str(out_dir),
        "config": {"distill": cfg.to_dict(), "eval": asdict(eval_cfg), "run": run},
        "toolkit_version": __version__,
    }


def _val_metrics(ev) -> dict[str, Any]:
    """``val_accuracy_mean`` / ``_std`` / ``val_accuracies`` when the run scored a validation split."""
    if ev is None or "val" not in ev.extra.get("also", {}):
        return {}
    val = ev.also("val")
    return {"val_accuracy_mean": val.mean, "val_accuracy_std": val.std, "val_accuracies": val.accuracies}


def _distill_one(train: ImageDataset, cfg: DistillConfig, pre: Preprocessor, flag: StopFlag, resume: bool,
                 label: str, con: Console, quiet: bool) -> tuple[FactorizedDataset, float]:
    ckpt = Path(cfg.checkpoint_dir)
    resume_this = resume and has_checkpoint(ckpt)
    flag.phase = label
    t0 = time.perf_counter()
    with DistillProgress(cfg.iterations, label, quiet=quiet, terms=active_loss_terms(cfg)) as bar, flag.distilling():
        if flag.requested:  # Ctrl-C arrived between phases
            raise DistillationInterrupted(0, str(ckpt))
        result = distill(train, cfg, resume=resume_this, on_step=bar, preprocessor=pre, should_stop=flag)
        bar.complete()
    if flag.requested:  # Ctrl-C during the last iteration: the run is complete and checkpointed
        raise DistillationInterrupted(cfg.iterations, str(ckpt))
    return result, time.perf_counter() - t0


def _evaluate(result: FactorizedDataset, test: ImageDataset, eval_cfg: EvalConfig, label: str,
              con: Console, val: ImageDataset | None = None) -> tuple[Any, float]:
    if eval_cfg.runs == 0:  # --eval-runs 0: no evaluation at all (no test pass either)
        con.info(f"  {label}: not evaluated (--eval-runs 0)")
        return None, 0.0
    con.info(f"evaluating {label}: {eval_cfg.runs} run(s) × {eval_cfg.epochs} epochs of {eval_cfg.arch}...")
    t0 = time.perf_counter()
    with EvalProgress(eval_cfg.runs, eval_cfg.epochs, f"evaluating {eval_cfg.arch}", quiet=con.quiet) as bar:
        ev = evaluate(result, test, eval_cfg, on_epoch=bar, also=None if val is None else {"val": val})
    if val is not None:
        con.info(f"  {label}: validation {ev.also('val').mean:.2f} %, test {ev.mean:.2f} ± {ev.std:.2f} %")
    else:
        con.info(f"  {label}: {ev.mean:.2f} ± {ev.std:.2f} %")
    return ev, time.perf_counter() - t0


def run(args: argparse.Namespace, argv: list[str], flag: StopFlag, holder: dict[str, Any]) -> dict[str, Any]:
    con = Console(args.quiet, args.json)
    resolved = resolve(args.config, args.set, flags_from(args), recipe=args.recipe)
    cfg, settings = resolved.distill, resolved.settings
    if args.resume and not (args.out or settings.out):
        raise UsageError("--resume needs --out DIR, the directory of the interrupted run")
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    _check_network(cfg.network, "--network")
    _check_network(settings.eval_arch, "--eval-arch")
    resolve_device(cfg.device)
    out = Path(args.out or settings.out or default_out_dir("haba-distill", settings.dataset))
    run_dir = RunDirectory(out, resume=args.resume, overwrite=args.overwrite).check()
    if run_dir.notes:
        print(f"{PROG}: " + "; ".join(run_dir.notes), file=sys.stderr, flush=True)  # even with --quiet

    train = load_dataset(settings.dataset, root=settings.data_root, split="train")
    test = load_dataset(settings.dataset, root=settings.data_root, split="test")
    val = None
    if settings.val_per_class:
        train, val = validation_split(train, settings.val_per_class)
    _check_buffer(cfg, train, settings.val_per_class)
    plan = config_plan(cfg, train.image_shape, train.num_classes)
    check_budget(cfg, plan.bpc, plan.basis_shape, train)
    compare = settings.compare and cfg.parameterization in BASELINE_PARAM

    run_dir.prepare()
    holder["run_dir"] = run_dir
    holder["resume"] = resume_command(argv, out)
    cfg.checkpoint_dir = str(run_dir.checkpoint.absolute())
    eval_cfg = resolved.eval_config()
    run_info = {k: v for k, v in resolved.as_dict()["run"].items()}
    run_info["config_file"] = resolved.config_file
    run_info["recipe"] = resolved.recipe
    if settings.data_root:  # haba-evaluate finds the data again from any working directory
        run_info["data_root"] = str(Path(settings.data_root).expanduser().absolute())

    label = _label(cfg)
    what = (f"{plan.bpc} bases per class + {plan.num_hallucinators} hallucinators" if plan.num_hallucinators
            else f"{plan.bpc} images per class").replace("1 bases", "1 basis").replace("1 images", "1 image")
    con.info(f"{PROG}: {train.name} ({len(train)} train / {'' if val is None else f'{len(val)} validation / '}"
             f"{len(test)} test images, {train.num_classes} classes), "
             f"{label}: {what} = {plan.storage.bytes:,} bytes "
             f"(IPC-equivalent {plan.storage.ipc_equivalent:.3g}); output {out}")
    fill_note = (unused_budget_note(plan, config_plan(cfg, train.image_shape, train.num_classes, rule="fill"))
                 if cfg.budget_rule == "exact" else None)
    for note in [*plan.notes, fill_note, bank_share_note(plan)]:
        if note:
            con.info(f"  note: {note}")

    t_start = time.perf_counter()
    pre = Preprocessor.fit(train.images, train.mean, train.std, cfg.zca, cfg.zca_regularization)
    try:
        result, d_s = _distill_one(train, cfg, pre, flag, args.resume, label, con, args.quiet)
        ev, e_s = _evaluate(result, test, eval_cfg, label, con, val)
        metrics = _metrics(label, result, ev, cfg, eval_cfg, run_info, out, d_s, e_s)

        base = base_metrics = None
        if compare:
            base_dir_name = BASELINE_DIR[cfg.parameterization]
            base_cfg = _baseline_config(cfg, result, (run_dir.work / base_dir_name / "checkpoint").absolute())
            base_label = _label(base_cfg)
            (run_dir.work / base_dir_name).mkdir(exist_ok=True)
            base, bd_s = _distill_one(train, base_cfg, pre, flag, args.resume, base_label, con, args.quiet)
            base_ev, be_s = _evaluate(base, test, eval_cfg, base_label, con, val)
            base_metrics = _metrics(base_label, base, base_ev, base_cfg, eval_cfg, run_info, out / base_dir_name,
                                    bd_s, be_s)
    except NonFiniteLossError as exc:
        message = str(exc).replace("(lr_bases / lr_hallucinators)", "(--lr-bases / --lr-hallucinators)")
        if not args.resume:  # this run's output directory, checkpoint included, is removed on the way out
            message = re.sub(r"the last good checkpoint is in [^;]*; ", "", message)
        raise NonFiniteLossError(message) from None
    metrics["baseline"] = base_metrics
    metrics["timings"]["total_s"] = time.perf_counter() - t_start

    def write(tmp: Path) -> None:
        result.save(tmp)
        if not args.no_images:
            images.save_bases(result, tmp / "bases.png")
            images.save_hallucinated(result, tmp / "hallucinated.png")
        write_json(tmp / "metrics.json", metrics)
        if base is not None:
            bdir = tmp / BASELINE_DIR[cfg.parameterization]
            base.save(bdir)
            if not args.no_images:
                images.save_bases(base, bdir / "bases.png")
            write_json(bdir / "metrics.json", base_metrics)

    run_dir.finish(write)
    rows = [metrics] + ([base_metrics] if base_metrics else [])
    con.result(report.distill_table(rows))
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True), flush=True)
    return metrics


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.list_presets:
        for name in list_presets():
            print(f"{name:24s} {describe_preset(name)}")
        return 0
    flag = StopFlag()
    holder: dict[str, Any] = {"flag": flag}

    def cleanup() -> None:
        if "run_dir" in holder:
            holder["run_dir"].cleanup()

    with handle_errors(PROG, cleanup), sigint_handler(flag):
        try:
            run(args, argv, flag, holder)
        except (DistillationInterrupted, KeyboardInterrupt) as exc:
            _interrupted(exc, holder)
    return 0


def _interrupted(exc: BaseException, holder: dict[str, Any]) -> None:
    run_dir: RunDirectory | None = holder.get("run_dir")
    if run_dir is not None and run_dir.work != run_dir.path:  # --overwrite: the old result is still there
        run_dir.cleanup()
        print(f"{PROG}: interrupted; {run_dir.path} still holds the previous result (an --overwrite run cannot be "
              f"resumed)", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_INTERRUPTED)
    if run_dir is None or not has_checkpoint(run_dir.checkpoint):
        if run_dir is not None:
            run_dir.cleanup()
        print(f"{PROG}: interrupted before the first checkpoint; nothing to resume", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_INTERRUPTED)
    where = (f"after iteration {exc.iteration} of {getattr(holder.get('flag'), 'phase', 'the run')}"
             if isinstance(exc, DistillationInterrupted) and exc.iteration
             else "(the last checkpoints are kept)")
    print(f"{PROG}: interrupted {where}; resume with: {holder['resume']}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
