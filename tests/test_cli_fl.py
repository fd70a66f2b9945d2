"""The ``haba-fl`` runner: a tiny in-process run of both methods, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from haba_cl.fl_cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--dataset", "digits", "--iterations", "2", "--net-width", "16", "--net-depth", "2", "--hallucinators", "2",
        "--server-epochs", "3", "--set", "batch-real=32"]


def run_cli(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse errors
        return exc.code


def test_runs_both_methods_and_writes_results(tmp_path, capsys):
    out = tmp_path / "out"
    code = run_cli([*TINY, "--clients", "2", "--alpha", "1.0", "--mode", "both", "--rounds", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["runs"]) == {"haba", "fedavg"}
    assert [r["method"] for r in doc["table"]] == ["HaBa one-shot", "HaBa 2-round", "FedAvg", "FedAvg"]
    for mode, run in doc["runs"].items():
        assert run["status"] == "ok" and len(run["rounds"]) == 2
        for r in run["rounds"]:
            assert 0.0 <= r["accuracy"] <= 1.0 and r["bytes_up"] > 0  # fractions; percent only in the table
            up = r["client_train_metrics"]["upload-bytes"]  # accepted replies, summed over clients
            assert up == r["bytes_up"] if not r["rejected"] else up < r["bytes_up"]
        assert Path(run["artifacts"]["model"]) == out / f"{mode}-model.safetensors"
        assert Path(run["artifacts"]["model"]).exists()
        assert run["totals"]["bytes_total"] == run["rounds"][-1]["cumulative_bytes"]
        assert (out / f"{mode}.json").exists()
    one_shot = doc["table"][0]
    assert one_shot["bytes_down"] == 0 and one_shot["total_bytes"] == doc["runs"]["haba"]["rounds"][0]["bytes_up"]
    assert doc["table"][-1]["total_bytes"] == doc["runs"]["fedavg"]["totals"]["bytes_total"]
    assert "HaBa one-shot" in captured.out and "total bytes" in captured.out
    assert (out / "haba-synthetic" / "collection.json").exists()
    assert doc["args"]["clients"] == 2 and doc["wall_seconds"] > 0
    png = out / "accuracy_vs_bytes.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert not list(out.glob(".*tmp*"))
    last = doc["table"][-1]
    assert f"{100 * last['accuracy']:.2f}" in captured.out.splitlines()[len(doc["table"]) + 1]


@pytest.mark.parametrize("argv", [
    ["--dataset", "no-such-set"],
    ["--mode", "fedprox"],
    ["--dataset", "mnist", "--data-root", "{tmp}/nowhere"],
    ["--dataset", "imagefolder:{tmp}/missing.tar.gz"],
    ["--alpha", "0"],
    ["--alpha", "-0.5"],
    ["--clients", "0"],
    ["--rounds", "0"],
    ["--clients", "abc"],
    ["--set", "no-such-key=1"],
    ["--set", "recipe=turbo"],
    ["--recipe", "turbo"],
    ["--set", "shared-hallucinators=true", "--rounds", "1"],
    ["--set", "shared-hallucinators=true", "--rounds", "2", "--set", "parameterization=idc", "--mode", "haba"],
    ["--set", "val-per-class=-1"],
    ["--set", "val-per-class=many"],
])
def test_bad_input_is_one_line_exit_2(argv, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = run_cli([*argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("haba-fl: error:"), err
    assert not (tmp_path / "out" / "results.json").exists()


def test_console_script_error_has_no_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "haba_cl.fl_cli", "--alpha", "0", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "alpha" in proc.stderr


def test_default_recipe_is_modest_except_on_the_8x8_digits():
    from haba_cl.fl_cli import build_parser, run_config_overrides

    from federated.run_config import resolve_run_config

    def recipe_of(*argv):  # haba-fl leaves "" to the app, which resolves it per dataset (haba_core)
        return resolve_run_config(run_config_overrides(build_parser().parse_args(list(argv)), "haba"))["recipe"]

    assert recipe_of("--dataset", "mnist") == "modest"
    assert recipe_of("--dataset", "digits") == "paper-pca"
    assert recipe_of("--dataset", "digits", "--recipe", "modest") == "modest"


def test_every_flag_reaches_the_run_config_under_its_flower_name():
    from haba_cl.fl_cli import build_parser, run_config_overrides

    args = build_parser().parse_args(["--objective", "dc", "--ipc", "3", "--hallucinators", "4", "--server-lr", "0.2",
                                      "--local-lr", "0.3", "--local-batch-size", "7", "--iterations", "9"])
    ov = run_config_overrides(args, "fedavg")
    assert (ov["objective"], ov["ipc"], ov["hallucinators"], ov["iterations"]) == ("dc", 3, 4, 9)
    assert (ov["server-learning-rate"], ov["learning-rate"], ov["batch-size"]) == (0.2, 0.3, 7)
    assert ov["recipe"] == ""  # the app resolves the dataset's default


def test_table_names_the_bank_round_of_a_shared_bank_run():
    from haba_cl.fl_cli import table_rows

    def rnd(k, acc, phase=None):
        return {"round": k, "accuracy": acc, "bytes_up": 10 * k, "bytes_down": k, "cumulative_bytes": 11 * k,
                **({"shared_bank": {"phase": phase}} if phase else {})}

    shared = table_rows({"haba": {"rounds": [rnd(1, None, "bank"), rnd(2, 0.9, "bases"), rnd(3, 0.92, "bases")]}})
    assert [(r["method"], r["rounds"]) for r in shared] == [
        ("HaBa bank round", 1), ("HaBa shared bank, one-shot", 2), ("HaBa shared bank, 3-round", 3)]
    plain = table_rows({"haba": {"rounds": [rnd(1, 0.8), rnd(2, 0.85)]}})
    assert [r["method"] for r in plain] == ["HaBa one-shot", "HaBa 2-round"]
