"""haba-distill in-process on tiny digits settings: outputs, JSON, resume, Ctrl-C and every error path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from cli_helpers import QUIET, TINY, assert_clean_error, run_main
from haba_cl import distill_cli
from haba_cl.distill_cli import main
from haba_cl.progress import DistillProgress
from haba_core import FactorizedDataset

REPO = Path(__file__).resolve().parents[1]
METRIC_KEYS = {"method", "dataset", "objective", "parameterization", "accuracy_mean", "accuracy_std", "accuracies",
               "runs", "stored_parameters", "stored_bytes", "ipc_equivalent", "timings", "config", "output_dir",
               "baseline", "storage", "num_bases", "num_hallucinators"}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """One tiny run with the default comparison, --json on stdout."""
    out = tmp_path_factory.mktemp("distill") / "out"
    ran = run_main(main, [*TINY, "--out", str(out), "--json"])
    assert ran.code == 0, ran.err
    return out, ran


def test_output_directory_layout(default_run):
    out, _ = default_run
    for name in ("factorized.safetensors", "meta.json", "metrics.json", "bases.png", "hallucinated.png",
                 "checkpoint/state.json", "baseline-plain/factorized.safetensors", "baseline-plain/metrics.json",
                 "baseline-plain/bases.png", "baseline-plain/checkpoint/state.json"):
        assert (out / name).is_file(), name
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"
    haba = FactorizedDataset.load(out)
    plain = FactorizedDataset.load(out / "baseline-plain")
    assert haba.synthetic.is_factorized and not plain.synthetic.is_factorized
    assert haba.meta["dataset"] == "digits"
    # the default budget is IPC 3 for both: HaBa never exceeds the plain set's bytes
    assert haba.storage().bytes <= plain.storage().bytes


def test_metrics_json_has_documented_keys(default_run):
    out, ran = default_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["runs"] == len(metrics["accuracies"]) == 1
    assert 0 <= metrics["accuracy_mean"] <= 100
    assert metrics["stored_bytes"] == 4 * metrics["stored_parameters"]
    assert {"distill_s", "eval_s", "total_s"} <= set(metrics["timings"])
    assert {"distill", "eval", "run"} <= set(metrics["config"])
    assert metrics["config"]["distill"]["iterations"] == 3
    assert metrics["config"]["run"]["recipe"] == "paper"  # the digits default
    assert metrics["config"]["distill"]["checkpoint_dir"].endswith("checkpoint")
    base = metrics["baseline"]
    assert base["parameterization"] == "plain" and METRIC_KEYS - {"baseline"} <= set(base)
    assert json.loads((out / "baseline-plain" / "metrics.json").read_text())["method"] == base["method"]


def test_json_mode_prints_only_json(default_run):
    out, ran = default_run
    printed = json.loads(ran.out)
    assert printed == json.loads((out / "metrics.json").read_text())
    assert "DM haba" in ran.err and "DM plain" in ran.err  # the table goes to stderr with --json


def test_pngs_are_grids_of_plausible_size(default_run):
    out, _ = default_run
    haba = FactorizedDataset.load(out)
    bpc = haba.synthetic.num_bases // 10
    cell = 8 * 4 + 2  # 8×8 digits enlarged ×4, 2-pixel padding
    # the grid plus a class-name margin on the left and a caption line on top
    with Image.open(out / "bases.png") as im:
        assert im.format == "PNG" and im.size[0] > bpc * cell + 2 and im.size[1] > 10 * cell + 2 + 8
    with Image.open(out / "hallucinated.png") as im:
        assert im.size[0] > (1 + haba.num_hallucinators) * cell + 2 and im.size[1] > 10 * cell + 2 + 8
        assert len(im.convert("L").getcolors(maxcolors=256 * 256) or []) > 8  # not blank


def test_table_on_stdout(tmp_path):
    ran = run_main(main, [*TINY, "--quiet", "--no-compare", "--out", str(tmp_path / "o")])
    assert ran.code == 0, ran.err
    assert "DM haba" in ran.out and "accuracy" in ran.out and str(tmp_path / "o") in ran.out
    assert ran.err == ""  # --quiet
    assert not (tmp_path / "o" / "baseline-plain").exists()


class _CtrlC(DistillProgress):
    """Sends SIGINT to this process after iteration ``AT`` (``TIMES`` times)."""
    AT, TIMES = 1, 1

    def __call__(self, iteration, losses):
        super().__call__(iteration, losses)
        if iteration == self.AT:
            for _ in range(self.TIMES):
                os.kill(os.getpid(), signal.SIGINT)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return FactorizedDataset.load(path).tensors()


def test_resume_after_ctrl_c_is_bit_identical(tmp_path, monkeypatch):
    args = [*TINY, "--iterations", "5", "--no-compare", "--quiet"]
    ref = run_main(main, [*args, "--out", str(tmp_path / "ref")])
    assert ref.code == 0, ref.err

    out = tmp_path / "cut"
    monkeypatch.setattr(distill_cli, "DistillProgress", _CtrlC)
    cut = run_main(main, [*args, "--out", str(out)])
    assert cut.code == 130, cut.err
    assert "after iteration 2" in cut.err and "--resume" in cut.err and str(out) in cut.err
    assert (out / "checkpoint" / "state.json").is_file() and not (out / "factorized.safetensors").exists()
    monkeypatch.setattr(distill_cli, "DistillProgress", DistillProgress)

    resumed = run_main(main, [*args, "--out", str(out), "--resume"])
    assert resumed.code == 0, resumed.err
    a, b = _tensors(tmp_path / "ref"), _tensors(out)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert json.loads((out / "metrics.json").read_text())["accuracies"] == \
        json.loads((tmp_path / "ref" / "metrics.json").read_text())["accuracies"]


def test_second_ctrl_c_aborts_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(_CtrlC, "TIMES", 2)
    monkeypatch.setattr(distill_cli, "DistillProgress", _CtrlC)
    out = tmp_path / "o"
    ran = run_main(main, [*TINY, "--quiet", "--out", str(out)])
    assert ran.code == 130
    assert "nothing to resume" in ran.err and "Traceback" not in ran.err
    assert not out.exists()


def test_resume_command_keeps_arguments():
    cmd = distill_cli.resume_command(["--ipc", "4", "--out", "old", "--overwrite", "--set", "a=b c"], Path("runs/x"))
    assert cmd == "haba-distill --ipc 4 --set 'a=b c' --out runs/x --resume"


# ----------------------------------------------------------------------------- errors: exit 2, one line
def test_unknown_dataset(tmp_path):
    ran = run_main(main, ["--dataset", "nosuch", "--out", str(tmp_path / "o")])
    assert_clean_error(ran, "unknown dataset", "nosuch")
    assert not (tmp_path / "o").exists()


def test_missing_data_files(tmp_path):
    ran = run_main(main, ["--dataset", "mnist", "--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert_clean_error(ran, "mnist", "not found")
    assert not (tmp_path / "o").exists()


def test_unknown_architecture(tmp_path):
    assert_clean_error(run_main(main, [*QUIET, "--eval-arch", "LeNet9", "--out", str(tmp_path / "o")]),
                       "unknown architecture", "LeNet9")
    assert_clean_error(run_main(main, [*QUIET, "--network", "LeNet9", "--out", str(tmp_path / "o")]), "LeNet9")
    assert not (tmp_path / "o").exists()


def test_budget_too_small(tmp_path):
    ran = run_main(main, [*QUIET, "--ipc", "1", "--param", "haba", "--out", str(tmp_path / "o")])
    assert_clean_error(ran, "cannot hold one basis per class", "--ipc")
    assert not (tmp_path / "o").exists()


def test_non_finite_loss_leaves_no_output(tmp_path):
    ran = run_main(main, [*QUIET, "--lr-bases", "1e30", "--no-compare", "--out", str(tmp_path / "o")])
    assert_clean_error(ran, "non-finite loss", "lr")
    assert not (tmp_path / "o").exists()
    assert not list(tmp_path.iterdir())


def test_bad_toml_and_unknown_keys(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("iterations = [1,\n")
    assert_clean_error(run_main(main, ["--config", str(bad)]), "invalid toml", "bad.toml")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("iterations = 3\nfoo_bar = 1\n")
    assert_clean_error(run_main(main, ["--config", str(unknown)]), "unknown key", "foo_bar")
    nested = tmp_path / "nested.toml"
    nested.write_text("[mtt]\nsyn_step = 3\n")
    assert_clean_error(run_main(main, ["--config", str(nested)]), "mtt.syn_step")
    typed = tmp_path / "typed.toml"
    typed.write_text('iterations = "many"\n')
    assert_clean_error(run_main(main, ["--config", str(typed)]), "iterations", "integer")
    assert_clean_error(run_main(main, ["--set", "nope=1"]), "unknown key", "nope")
    assert_clean_error(run_main(main, ["--config", str(tmp_path / "missing.toml")]), "missing.toml")


def test_existing_output_is_refused_and_untouched(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_clean_error(run_main(main, [*QUIET, "--out", str(out)]), "already exists", "--overwrite")
    assert (out / "keep.txt").read_text() == "mine" and len(list(out.iterdir())) == 1
    assert_clean_error(run_main(main, [*QUIET, "--out", str(out), "--resume"]), "nothing to resume")
    assert (out / "keep.txt").read_text() == "mine"


def test_error_in_preexisting_empty_out_keeps_the_directory(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    ran = run_main(main, [*QUIET, "--lr-bases", "1e30", "--no-compare", "--out", str(out)])
    assert ran.code == 2
    assert out.is_dir() and not list(out.iterdir())


def test_subprocess_error_has_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "haba_cl.distill_cli", "--dataset", "nosuch", "--out", str(tmp_path / "o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("haba-distill: error: unknown dataset 'nosuch'")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_overwrite_replaces_and_conflicts_with_resume(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert_clean_error(run_main(main, [*QUIET, "--out", str(out), "--resume", "--overwrite"]), "--overwrite")
    ran = run_main(main, [*QUIET, "--no-compare", "--out", str(out), "--overwrite"])
    assert ran.code == 0, ran.err
    assert not (out / "old.txt").exists() and (out / "metrics.json").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(tmp_path):
    assert_clean_error(run_main(main, [*QUIET, "--device", "cuda", "--out", str(tmp_path / "o")]), "cuda")
    assert not (tmp_path / "o").exists()


def test_idc_haba_with_zca_and_its_idc_baseline(tmp_path):
    out = tmp_path / "o"
    argv = [*QUIET, "--param", "idc-haba", "--zca", "--ipc", "4", "--set", "basis_channels=2", "--out", str(out)]
    ran = run_main(main, argv)
    assert ran.code == 0, ran.err
    haba = FactorizedDataset.load(out)
    assert haba.synthetic.basis_shape == (2, 4, 4) and haba.preprocessor.zca is not None
    assert FactorizedDataset.load(out / "baseline-idc").synthetic.basis_shape == (1, 4, 4)
    cell = 8 * 4 + 2  # bases are shown at the image's size (plus a caption line and a class-name margin)
    with Image.open(out / "bases.png") as im:
        assert 10 * cell + 2 < im.size[1] < 10 * cell + 2 + 40
    with Image.open(out / "hallucinated.png") as im:
        assert im.size[0] > (1 + haba.num_hallucinators) * cell + 2 and 10 * cell + 2 < im.size[1] < 10 * cell + 42
    assert "DM idc-haba" in ran.out and "DM idc" in ran.out


def test_plain_run_has_no_hallucinations_and_no_baseline(tmp_path):
    out = tmp_path / "o"
    ran = run_main(main, [*QUIET, "--param", "plain", "--out", str(out)])
    assert ran.code == 0, ran.err
    assert (out / "bases.png").is_file() and not (out / "hallucinated.png").exists()
    assert json.loads((out / "metrics.json").read_text())["baseline"] is None
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["checkpoint"]


def test_eval_runs_zero_skips_evaluation(tmp_path, monkeypatch):
    def no_evaluation(*args, **kwargs):
        raise AssertionError("--eval-runs 0 must not evaluate")

    monkeypatch.setattr(distill_cli, "evaluate", no_evaluation)
    out = tmp_path / "out"
    ran = run_main(main, [*TINY, "--eval-runs", "0", "--no-compare", "--out", str(out)])
    assert ran.code == 0, ran.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["runs"] == 0 and metrics["accuracies"] == [] and metrics["accuracy_mean"] is None
    assert FactorizedDataset.load(out).synthetic.num_bases > 0
    assert (out / "bases.png").is_file()
    assert_clean_error(run_main(main, [*TINY, "--eval-runs", "-1", "--out", str(tmp_path / "o2")]), "eval_runs")


def test_no_images_writes_the_result_without_pngs(tmp_path):
    out = tmp_path / "out"
    ran = run_main(main, [*TINY, "--eval-runs", "0", "--compare", "--no-images", "--out", str(out)])
    assert ran.code == 0, ran.err
    assert not list(out.rglob("*.png"))
    assert FactorizedDataset.load(out).synthetic.num_bases > 0 and (out / "metrics.json").is_file()


def test_one_run_prints_no_zero_spread():
    from haba_cl.report import accuracy

    assert accuracy(91.5, 0.0, 1) == "91.50" and accuracy(91.5, 0.4, 3) == "91.50 ± 0.40"
    assert accuracy(None, None, 0) == "-"


def test_validation_split_is_scored_beside_test_for_result_and_baseline(tmp_path):
    out = tmp_path / "o"
    ran = run_main(main, [*TINY, "--quiet", "--val-per-class", "20", "--out", str(out), "--json"])
    assert ran.code == 0, ran.err
    metrics = json.loads((out / "metrics.json").read_text())
    baseline = json.loads((out / "baseline-plain" / "metrics.json").read_text())
    for m in (metrics, baseline):  # the same evaluation networks scored on both splits
        assert len(m["val_accuracies"]) == len(m["accuracies"]) == m["runs"]
        assert 0.0 <= m["val_accuracy_mean"] <= 100.0
    assert metrics["config"]["run"]["val_per_class"] == 20
    again = run_main(main, [*TINY, "--quiet", "--no-compare", "--val-per-class", "20", "--out", str(tmp_path / "p")])
    assert again.code == 0 and "validation accuracy (%)" in again.out
    same = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert same["val_accuracies"] == metrics["val_accuracies"]  # same seed, same split → same scores
    plain = run_main(main, [*TINY, "--quiet", "--no-compare", "--out", str(tmp_path / "q")])
    assert "validation" not in plain.out.split(str(tmp_path))[0]
    assert "val_accuracy_mean" not in json.loads((tmp_path / "q" / "metrics.json").read_text())
    assert_clean_error(run_main(main, [*QUIET, "--val-per-class", "-1", "--out", str(tmp_path / "r")]),
                       "val_per_class", ">= 0")


def test_recipe_fixed_bank_runs_from_the_command_line(tmp_path):
    """``--recipe fixed-bank`` (lr 0 for the bank) is a valid run; its bank is the one a 0-iteration run starts
    from; a negative learning rate is still one clear line."""
    runs = {}
    for name, iters in (("start", "0"), ("end", "3")):
        argv = [*QUIET, "--recipe", "fixed-bank", "--iterations", iters, "--eval-runs", "0", "--no-compare",
                "--out", str(tmp_path / name)]
        ran = run_main(main, argv)
        assert ran.code == 0, ran.err
        runs[name] = FactorizedDataset.load(tmp_path / name).synthetic
    start, end = runs["start"], runs["end"]
    assert all(torch.equal(a, b) for a, b in zip(start.hallucinators.parameters(), end.hallucinators.parameters()))
    assert not torch.equal(start.bases, end.bases)
    ran = run_main(main, [*QUIET, "--set", "lr_hallucinators=-0.1", "--out", str(tmp_path / "bad")])
    assert_clean_error(ran, "lr_hallucinators must be >= 0")
