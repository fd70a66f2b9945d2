"""Issue 16: crafted meta.json files, bad command-line values and bad data sets end in one clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from haba_core import FactorizedDataset, FormatError, HallucinatorConfig, Preprocessor, SyntheticSet, load_dataset
from haba_core.factorized_dataset import META_FILE
from haba_core.meta_schema import meta_digest

from cli_helpers import QUIET, assert_clean_error, run_main


def _saved(tmp_path, channels=1):
    torch.manual_seed(0)
    synth = SyntheticSet(torch.randn(4, channels, 8, 8), torch.tensor([0, 0, 1, 1]), (channels, 8, 8), 2,
                         num_hallucinators=2, hallucinator_config=HallucinatorConfig(depth=1))
    pre = Preprocessor((0.5,) * channels, (0.25,) * channels)
    FactorizedDataset(synth, pre, ["a", "b"], {"dataset": "digits", "config": {"net_width": 8}}).save(tmp_path)
    return json.loads((tmp_path / META_FILE).read_text())


def _deep(n: int) -> str:
    return "[" * n + "]" * n


CRAFTED = {
    "list": lambda m: [1, 2],
    "string": lambda m: "meta",
    "format_version-string": lambda m: {**m, "format_version": "2"},
    "format_version-newer": lambda m: {**m, "format_version": 99},
    "config-string": lambda m: {**m, "config": "x"},
    "net_width-string": lambda m: {**m, "config": {**m["config"], "net_width": "wide"}},
    "mean-string": lambda m: {**m, "mean": "abc"},
    "mean-null": lambda m: {**m, "mean": None},  # found by tests/test_fuzz.py
    "mean-3-values-on-1-channel": lambda m: {**m, "mean": [0.1, 0.2, 0.3]},
    "hallucinator-depth-huge": lambda m: {**m, "hallucinator": {**m["hallucinator"], "depth": 1_000_000}},
    "std-zero": lambda m: {**m, "std": [0.0]},
    "std-nan": lambda m: {**m, "std": [float("nan")]},
    "image_shape-bool": lambda m: {**m, "image_shape": [True, 8, 8]},
    "num_classes-negative": lambda m: {**m, "num_classes": -1},
    "classes-not-strings": lambda m: {**m, "classes": [1, 2]},
    "learned_lr-negative": lambda m: {**m, "learned_lr": -1.0},
}


@pytest.mark.parametrize("case", sorted(CRAFTED) + ["deep-nesting"])
def test_crafted_meta_json_is_refused_with_a_format_error(tmp_path, case):
    meta = _saved(tmp_path)
    if case == "deep-nesting":
        text = '{"format": "haba-factorized", "x": ' + _deep(100_000) + "}"
    else:
        bad = CRAFTED[case](meta)
        if isinstance(bad, dict):
            bad.pop("meta_sha256", None)  # as an older file would be: the schema has to catch it
        text = json.dumps(bad)
    (tmp_path / META_FILE).write_text(text)
    with pytest.raises(FormatError):
        FactorizedDataset.load(tmp_path)


def test_meta_json_is_covered_by_its_checksum_and_old_files_still_load(tmp_path):
    meta = _saved(tmp_path)
    assert meta["meta_sha256"] == meta_digest(meta)
    tampered = {**meta, "dataset": "cifar10"}
    (tmp_path / META_FILE).write_text(json.dumps(tampered))
    with pytest.raises(FormatError, match="checksum"):
        FactorizedDataset.load(tmp_path)
    old = dict(meta)
    del old["meta_sha256"]  # written before issue 16
    (tmp_path / META_FILE).write_text(json.dumps(old))
    assert len(FactorizedDataset.load(tmp_path)) == 4


def test_evaluate_cli_refuses_a_crafted_meta_json_in_one_line(tmp_path):
    from haba_cl.evaluate_cli import main

    meta = _saved(tmp_path)
    meta.pop("meta_sha256")
    meta["std"] = [0.0]
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    assert_clean_error(run_main(main, [str(tmp_path), "--quiet"]), "std")


# ---------------------------------------------------------------------------------------------- CLI values
@pytest.mark.parametrize("args,fragment", [
    (["--lr-bases", "-1"], "lr_bases"),
    (["--seed", "100000000000000000000000"], "seed"),
    (["--ipc", "1000000000"], "ipc"),
    (["--ipc", "500"], "largest class"),
    (["--bpc", "5000000"], "memory"),
    (["--bogus-option"], "--help"),
])
def test_distill_refuses_bad_values_in_one_line_without_leaving_a_directory(tmp_path, args, fragment):
    from haba_cl.distill_cli import main

    out = tmp_path / "out"
    ran = run_main(main, [*QUIET, "--dataset", "digits", "--out", str(out), *args])
    assert_clean_error(ran, fragment)
    assert not out.exists()


def test_non_utf8_config_file_is_one_line(tmp_path):
    from haba_cl.distill_cli import main

    cfg = tmp_path / "bad.toml"
    cfg.write_bytes(b"ipc = \xff\xfe\n")
    out = tmp_path / "out"
    assert_clean_error(run_main(main, [*QUIET, "--config", str(cfg), "--out", str(out)]), "UTF-8")
    assert not out.exists()


def test_evaluate_batch_size_zero_is_one_line(tmp_path):
    from haba_cl.evaluate_cli import main

    _saved(tmp_path)
    assert_clean_error(run_main(main, [str(tmp_path), "--batch-size", "0", "--quiet"]), "--batch-size")


@pytest.mark.parametrize("module", ["distill_cli", "evaluate_cli", "buffer_cli", "cl_cli", "fl_cli"])
def test_every_cli_reports_argparse_errors_in_one_line_with_a_help_hint(module):
    import importlib

    main = importlib.import_module(f"haba_cl.{module}").main
    ran = run_main(main, ["--no-such-option"])
    assert ran.code == 2 and "usage:" not in ran.err
    lines = [ln for ln in ran.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error:" in lines[0] and "--help" in lines[0], ran.err


def test_fl_refuses_an_ipc_larger_than_the_data(tmp_path):
    from haba_cl.fl_cli import main

    out = tmp_path / "fl"
    assert_clean_error(run_main(main, ["--ipc", "1000000000", "--out", str(out)]), "--ipc")
    assert not out.exists()


def test_fl_set_accepts_a_json_object_for_distill_overrides():
    from federated.distill_settings import distill_config
    from federated.run_config import resolve_run_config
    from haba_cl.fl_cli import build_parser, run_config_overrides

    args = build_parser().parse_args(["--set", 'distill-overrides={"lambda_cos": 0}'])
    cfg = resolve_run_config(run_config_overrides(args, "haba"))
    assert json.loads(cfg["distill-overrides"]) == {"lambda_cos": 0}
    assert distill_config(cfg).lambda_cos == 0


# ---------------------------------------------------------------------------------------------- data sets
def _folder(root, classes, size=(8, 8), big=None):
    for split in ("train", "test"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((*size, 3), 40 * i, np.uint8)).save(d / f"{i}.png")
    if big is not None:
        Image.new("L", big).save(root / "train" / classes[0] / "big.png")


def test_imagefolder_with_one_class_is_refused(tmp_path):
    _folder(tmp_path / "one", ["only"])
    with pytest.raises(FormatError, match="at least 2"):
        load_dataset(f"imagefolder:{tmp_path / 'one'}", root=str(tmp_path / "cache"), split="train")


def test_decompression_bomb_is_a_format_error(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 64x64 image is a "bomb" (> 2x the limit)
    _folder(tmp_path / "bomb", ["a", "b"], big=(64, 64))
    with pytest.raises(FormatError, match="big.png: refused to decode"):
        load_dataset(f"imagefolder:{tmp_path / 'bomb'}", root=str(tmp_path / "cache"), split="train")


# ---------------------------------------------------------------------------------------------- crash windows
def _tree(path, files):
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)


def test_recover_dir_finishes_an_interrupted_swap(tmp_path):
    from haba_core.atomic import COMPLETE, recover_dir

    out = tmp_path / "OUT"
    _tree(tmp_path / ".OUT.ab12.tmp", {"new.txt": "new", COMPLETE: ""})  # finished, not yet swapped in
    _tree(tmp_path / ".OUT.old", {"old.txt": "old"})
    notes = recover_dir(out)
    assert (out / "new.txt").read_text() == "new" and not (out / COMPLETE).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"] and len(notes) == 2


def test_recover_dir_restores_the_old_result_and_drops_unfinished_ones(tmp_path):
    from haba_core.atomic import recover_dir

    out = tmp_path / "OUT"
    out.mkdir()  # empty: the first rename happened, the second did not
    _tree(tmp_path / ".OUT.cd34.tmp", {"half.txt": "x"})  # no completion marker
    _tree(tmp_path / ".OUT.old", {"old.txt": "old"})
    recover_dir(out)
    assert (out / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]
    assert recover_dir(out) == []  # nothing left to do


def test_atomic_dir_replaces_in_one_step_and_leaves_nothing_behind(tmp_path):
    from haba_core.atomic import atomic_dir

    out = tmp_path / "OUT"
    for text in ("first", "second"):
        with atomic_dir(out) as tmp:
            (tmp / "r.txt").write_text(text)
    assert (out / "r.txt").read_text() == "second" and sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]
    assert sorted(p.name for p in out.iterdir()) == ["r.txt"]


def test_resume_after_a_crash_between_the_two_renames(tmp_path):
    from haba_cl.distill_cli import main

    out = tmp_path / "OUT"
    argv = [*QUIET, "--dataset", "digits", "--no-compare", "--out", str(out)]
    assert run_main(main, argv).code == 0
    before = (out / "factorized.safetensors").read_bytes()
    out.rename(tmp_path / ".OUT.old")  # killed after "OUT -> .OUT.old", before "tmp -> OUT"
    ran = run_main(main, [*argv, "--resume"])
    assert ran.code == 0, ran.err
    assert "recovered" in ran.err and (out / "factorized.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]


def test_overwrite_keeps_the_old_result_until_the_new_one_is_complete(tmp_path):
    from haba_cl.distill_cli import main

    out = tmp_path / "OUT"
    _tree(out, {"old.txt": "old"})
    ran = run_main(main, [*QUIET, "--dataset", "digits", "--no-compare", "--out", str(out), "--overwrite",
                          "--lr-bases", "1e30"])  # diverges: the new run never completes
    assert ran.code == 2
    assert (out / "old.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]


def test_ctrl_c_during_overwrite_keeps_the_old_result(tmp_path, monkeypatch):
    from haba_cl import distill_cli
    from test_cli_distill import _CtrlC

    out = tmp_path / "OUT"
    _tree(out, {"old.txt": "old"})
    monkeypatch.setattr(distill_cli, "DistillProgress", _CtrlC)
    ran = run_main(distill_cli.main, [*QUIET, "--dataset", "digits", "--no-compare", "--out", str(out), "--overwrite"])
    assert ran.code == 130 and "previous result" in ran.err
    assert (out / "old.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]
