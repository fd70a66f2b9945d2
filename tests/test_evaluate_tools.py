"""Issue 17 items 13-15 and issue 14: haba-evaluate finds the recorded data root, never suggests a
nonexistent --download flag, shows progress, evaluates every architecture with --arch all; progress bars
show only the loss terms a recipe computes; PNG grids carry a caption and class labels."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from cli_helpers import QUIET, run_main
from data_fixtures import write_idx_set
from haba_cl import distill_cli, images
from haba_cl.evaluate_cli import main, parse_archs
from haba_cl.progress import DistillProgress
from haba_core import KNOWN_NETWORKS, FactorizedDataset

FAST = ["--threads", "1", "--runs", "1", "--epochs", "1"]


@pytest.fixture(scope="module")
def mnist_result(tmp_path_factory):
    base = tmp_path_factory.mktemp("evaltools")
    write_idx_set(base / "mnist-root", gz=True, n_train=30, n_test=10)
    out = base / "result"
    ran = run_main(distill_cli.main, [*QUIET, "--dataset", "mnist", "--data-root", str(base / "mnist-root"),
                                      "--ipc", "1", "--no-compare", "--out", str(out)])
    assert ran.code == 0, ran.err
    return base, out


def test_evaluate_uses_the_recorded_data_root(mnist_result, tmp_path, monkeypatch):
    base, out = mnist_result
    monkeypatch.chdir(tmp_path)  # elsewhere: ./data does not hold MNIST
    monkeypatch.delenv("HABA_DATA_ROOT", raising=False)
    ran = run_main(main, [str(out), *FAST])
    assert ran.code == 0, ran.err
    assert "recorded with the result" in ran.err
    assert json.loads((out / "eval.json").read_text())["data_root"] == str((base / "mnist-root").absolute())
    # a wrong explicit root still fails cleanly, and no message suggests a --download flag
    bad = run_main(main, [str(out), *FAST, "--data-root", str(tmp_path / "empty")])
    assert bad.code == 2 and "--download" not in bad.err and "not found" in bad.err


def test_arch_all_one_row_per_architecture_with_progress(mnist_result):
    _, out = mnist_result
    assert parse_archs("all") == list(KNOWN_NETWORKS)
    ran = run_main(main, [str(out), *FAST, "--arch", "all"])
    assert ran.code == 0, ran.err
    summary = json.loads((out / "eval.json").read_text())
    assert [r["arch"] for r in summary["architectures"]] == list(KNOWN_NETWORKS)
    for arch in KNOWN_NETWORKS:
        assert any(line.startswith(arch + " ") and "±" in line for line in ran.out.splitlines()), ran.out
    assert "epoch" in ran.err  # the evaluation progress bar (stderr)


def test_progress_bar_omits_switched_off_terms(capsys):
    bar = DistillProgress(2, "x", terms=("dd",))
    bar(0, {"dd": 1.0, "cos": 0.0, "adv": 0.0})
    text = str(bar.bar)
    bar.close()
    assert "dd=" in text and "cos" not in text and "adv" not in text
    full = DistillProgress(2, "y")
    full(0, {"dd": 1.0, "cos": 0.5, "adv": 0.2})
    assert "cos=" in str(full.bar) and "adv=" in str(full.bar)
    full.close()


def test_grids_have_caption_and_class_labels(mnist_result, tmp_path):
    _, out = mnist_result
    result = FactorizedDataset.load(out)
    path = images.save_bases(result, tmp_path / "bases.png")
    img = Image.open(path).convert("L")
    cell = 32 + 2  # 28×28 digits enlarged to >= 32 px, plus padding
    n_classes = result.synthetic.num_classes
    assert img.height > n_classes * cell + 2  # a caption line above the grid
    assert img.width > cell + 2  # a label margin left of one column of bases
    margin = torch.tensor(list(img.crop((0, 20, 20, img.height)).getdata()))
    assert int((margin < 128).sum()) > 0  # dark text (class names) in the left margin


def test_a_learned_lr_trains_only_its_own_network_unless_asked(mnist_result, tmp_path):
    _, out = mnist_result
    plain = FactorizedDataset.load(out)
    meta = {**plain.meta, "config": {**plain.meta.get("config", {}), "network": "ConvNet"}}
    mtt = tmp_path / "mtt"
    FactorizedDataset(plain.synthetic, plain.preprocessor, plain.classes, meta, 0.05).save(mtt)
    (mtt / "metrics.json").write_text((out / "metrics.json").read_text())  # the recorded data root
    lrs = {}
    for scope in ("same-network", "every-network"):
        ran = run_main(main, [str(mtt), *FAST, "--arch", "ConvNet,AlexNet", "--learned-lr-on", scope])
        assert ran.code == 0, ran.err
        lrs[scope] = [r["lr"] for r in json.loads((mtt / "eval.json").read_text())["architectures"]]
    assert lrs["same-network"] == [pytest.approx(0.05), 0.01]
    assert lrs["every-network"] == [pytest.approx(0.05), pytest.approx(0.05)]
    bad = run_main(main, [str(mtt), *FAST, "--learned-lr-on", "sometimes"])
    assert bad.code == 2 and "Traceback" not in bad.err
