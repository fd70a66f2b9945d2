"""``haba-cl``: bad input exits 2 with one line; the CIFAR-100 path and the DM protocol run end to end (tiny)."""

from __future__ import annotations

import json
import pickle

import numpy as np

from haba_cl.cl_cli import main, parse_seeds

TINY = ["--epochs", "1", "--batch-size", "16", "--net-width", "8", "--net-depth", "2", "--distill-iterations", "2",
        "--distill-net-width", "8", "--hallucinators", "2", "--quiet"]


def write_cifar100(root, classes: int = 10, n_train: int = 6, n_test: int = 3, seed: int = 0) -> None:
    """``<root>/cifar-100-python/{train,test,meta}``: protocol-2 pickles of dicts exactly as in the release
    (``data`` uint8 N×3072, ``fine_labels``/``coarse_labels`` lists, 100 fine names in ``meta``)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)

    def split(n_per_class: int, label: str):
        fine = [c for c in range(classes) for _ in range(n_per_class)]
        data = rng.integers(0, 80, size=(len(fine), 3 * 32 * 32), dtype=np.uint8)
        for i, c in enumerate(fine):  # class c: one brighter channel band, so classes differ
            data[i, (c % 3) * 1024 + (c * 97) % 900:(c % 3) * 1024 + (c * 97) % 900 + 120] = 230
        return {"filenames": [f"img_{label}_{i}.png" for i in range(len(fine))], "batch_label": label,
                "fine_labels": fine, "coarse_labels": [c // 5 for c in fine], "data": data}

    for name, n in (("train", n_train), ("test", n_test)):
        with open(folder / name, "wb") as f:
            pickle.dump(split(n, f"{name} batch"), f, protocol=2)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"class_{i:02d}" for i in range(100)],
                     "coarse_label_names": [f"super_{i:02d}" for i in range(20)]}, f, protocol=2)


def one_line_error(capsys, argv, match: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert match in lines[0], lines[0]


def test_bad_input_exits_2_with_one_line(capsys, tmp_path):
    one_line_error(capsys, ["--strategies", "haba,magic"], "unknown strategy 'magic'")
    one_line_error(capsys, ["--benchmark", "split-imagenet"], "unknown benchmark")
    one_line_error(capsys, ["--benchmark", "split-mnist", "--data-root", str(tmp_path / "nothing"), *TINY],
                   "not found")
    one_line_error(capsys, ["--benchmark", "split-cifar100", "--data-root", str(tmp_path), *TINY], "not found")
    one_line_error(capsys, ["--benchmark", "split-digits", "--mem-size", "6", "--strategies", "haba", *TINY],
                   "too small for one basis per class")
    one_line_error(capsys, ["--benchmark", "split-digits", "--mem-size", "6", "--strategies", "replay", *TINY],
                   "too small")
    one_line_error(capsys, ["--benchmark", "split-digits", "--n-experiences", "3", *TINY], "cannot be split")
    one_line_error(capsys, ["--epochs", "many"], "invalid int value")
    one_line_error(capsys, ["--seeds", "x"], "--seeds")
    one_line_error(capsys, ["--threads", "0"], "--threads must be at least 1")
    (tmp_path / "bad.json").write_text(json.dumps({"no_such_field": 1}))
    one_line_error(capsys, ["--benchmark", "split-digits", "--distill-config", str(tmp_path / "bad.json"), *TINY],
                   "unknown configuration key")


def test_parse_seeds():
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("4,7") == [4, 7]
    assert parse_seeds("2-4") == [2, 3, 4]


def test_split_cifar100_fixture_all_strategies(tmp_path, capsys):
    write_cifar100(tmp_path / "data")
    out = tmp_path / "out"
    code = main(["--benchmark", "split-cifar100", "--n-experiences", "2", "--data-root", str(tmp_path / "data"),
                 "--strategies", "haba,replay,herding,distilled-plain,idc,haba-shared,naive,er", "--mem-size", "20",
                 "--seeds", "1",
                 "--out", str(out), "--save-memory", *TINY])
    printed = capsys.readouterr().out
    assert code == 0
    assert "| haba |" in printed and "| naive |" in printed and "final avg. accuracy" in printed
    res = json.loads((out / "results.json").read_text())
    assert set(res["summary"]) == {"haba", "replay", "herding", "distilled-plain", "idc", "haba-shared", "naive", "er"}
    idc = next(r for r in res["runs"] if r["strategy"] == "idc")
    assert idc["memory_bytes"][-1] > 0  # replay from IDC memory (down-sampled distilled images) at equal bytes
    assert res["data"]["classes"] == 10 and res["data"]["image_shape"] == [3, 32, 32]
    budget = 20 * 3 * 32 * 32 * 4
    orders = {tuple(r["class_order"]) for r in res["runs"]}
    assert len(orders) == 1  # every strategy saw the same class order
    for r in res["runs"]:
        assert 0.0 <= r["final_accuracy"] <= 1.0 and len(r["stream_accuracy"]) == 2
        if r["strategy"] != "naive":
            assert all(b is not None and b <= budget for b in r["memory_bytes"]), r["strategy"]
    assert (out / "memories" / "haba-seed0" / "memory.json").is_file()
    shared = json.loads((out / "memories" / "haba-shared-seed0" / "memory.json").read_text())
    assert shared["share_hallucinators"] is True and len(shared["parts"]) == 1


def test_dm_protocol_on_digits(tmp_path, capsys):
    cfg = tmp_path / "distill.json"
    cfg.write_text(json.dumps({"dm": {"batch_real": 8}, "lambda_cos": 0.0}))
    out = tmp_path / "out"
    code = main(["--benchmark", "split-digits", "--n-experiences", "2", "--strategies", "haba,replay,naive",
                 "--mem-size", "40", "--seeds", "0,1", "--protocol", "fresh-network", "--protocol-epochs", "2",
                 "--train-per-class", "8", "--test-per-class", "4", "--distill-config", str(cfg),
                 "--out", str(out), *TINY])
    assert code == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["protocol"] == "fresh-network" and res["config"]["distill"]["dm"] == {"batch_real": 8}
    for r in res["runs"]:
        if r["strategy"] == "naive":
            assert r["final_accuracy"] is None
        else:
            assert len(r["protocol_accuracy"]) == 2 and 0.0 <= r["final_accuracy"] <= 1.0
            assert r["forgetting"] is not None
    assert res["summary"]["haba"]["runs"] == 2 and res["summary"]["naive"]["final_accuracy_mean"] is None


def test_modest_recipe_layers_under_the_distill_config(tmp_path, capsys):
    cfg = tmp_path / "distill.json"
    cfg.write_text(json.dumps({"hallucinator": {"depth": 1}, "lambda_cos": 0.05}))
    out = tmp_path / "out"
    code = main(["--benchmark", "split-digits", "--n-experiences", "2", "--strategies", "haba", "--mem-size", "60",
                 "--seeds", "1", "--train-per-class", "8", "--test-per-class", "4", "--recipe", "modest",
                 "--distill-config", str(cfg), "--out", str(out), *TINY])
    assert code == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["recipe"] == "modest"
    distill = res["config"]["distill_config"]  # the resolved per-experience DistillConfig
    assert distill["parameterization"] == "idc-haba" and distill["lambda_task"] == 0.0
    assert distill["hallucinator_optimizer"] == "adam" and distill["lr_hallucinators"] == 1e-4
    assert distill["lambda_cos"] == 0.05  # the JSON file overrides the recipe
    h = distill["hallucinator"]
    assert (h["init"], h["affine_stride"], h["depth"]) == ("pca", 2, 1)  # nested keys merge
    run = res["runs"][0]
    assert all(b is not None and b <= 60 * 64 * 4 for b in run["memory_bytes"])  # 60 digits images of 8×8 float32


def test_default_recipe_is_modest_except_on_the_8x8_digits():
    from haba_cl.cl_cli import build_parser, config_from_args

    def recipe_of(*argv):
        return config_from_args(build_parser().parse_args(list(argv))).recipe

    assert recipe_of("--benchmark", "split-mnist") == "modest"
    assert recipe_of("--benchmark", "split-digits") == "paper-pca"
    assert recipe_of("--benchmark", "split-digits", "--recipe", "modest") == "modest"


def test_split_cifar100_20_experiences_avalanche_strategies_and_plots(tmp_path, capsys):
    """The headline run (100 classes, 20 experiences) on a fixture in the release's pickle format, with
    Avalanche's own strategies beside HaBa; PNGs land next to results.json; one seed prints no '± 0.00'."""
    write_cifar100(tmp_path / "data", classes=100, n_train=2, n_test=1)
    out = tmp_path / "out"
    code = main(["--benchmark", "split-cifar100", "--n-experiences", "20", "--data-root", str(tmp_path / "data"),
                 "--strategies", "haba,gdumb,lwf,ewc", "--mem-size", "100", "--out", str(out), *TINY])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "±" not in printed and "| gdumb |" in printed and "| ewc |" in printed
    res = json.loads((out / "results.json").read_text())
    assert set(res["summary"]) == {"haba", "gdumb", "lwf", "ewc"}
    for r in res["runs"]:
        assert len(r["stream_accuracy"]) == 20 and len(r["experience_accuracy"]) == 20
        if r["strategy"] in ("haba", "gdumb"):
            assert all(b is not None and b <= 100 * 3 * 32 * 32 * 4 for b in r["memory_bytes"]), r["strategy"]
    haba = next(r for r in res["runs"] if r["strategy"] == "haba")
    assert all(h["bpc"] <= 2 for h in haba["memory_history"])  # two images per class: never more bases
    for name in ("accuracy_matrix.png", "accuracy_curves.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plot: {out / name}" in printed
    assert res["plots"] == ["accuracy_matrix.png", "accuracy_curves.png"]


def test_help_states_each_default_once(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "(default: None)" not in text and ") (default" not in text
    for name in ("er", "gdumb", "lwf", "ewc"):
        assert name in text


def test_memory_updates_show_a_progress_bar_unless_quiet(tmp_path, capsys):
    argv = ["--benchmark", "split-digits", "--n-experiences", "2", "--strategies", "haba", "--mem-size", "40",
            "--train-per-class", "8", "--test-per-class", "4", *[a for a in TINY if a != "--quiet"]]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "memory update, experience 0" in err and "memory update, experience 1" in err
    assert main([*argv, "--quiet"]) == 0
    assert "memory update" not in capsys.readouterr().err


def test_old_dm_strategy_and_protocol_names_still_work_with_a_warning(capsys):
    from haba_cl.cl_cli import build_parser, config_from_args

    args = build_parser().parse_args(["--benchmark", "split-digits", "--strategies", "haba,dm", "--protocol", "dm",
                                      "--distill-width", "8"])
    config = config_from_args(args).validate()
    assert config.strategies == ["haba", "distilled-plain"] and config.protocol == "fresh-network"
    assert config.distill["net_width"] == 8
    err = capsys.readouterr().err
    assert "strategy 'dm' is deprecated; use 'distilled-plain'" in err
    assert "protocol 'dm' is deprecated; use 'fresh-network'" in err and "--distill-width is deprecated" in err
