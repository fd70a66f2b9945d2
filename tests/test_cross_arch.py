"""benchmarks.cross_arch: saved sets scored on other networks, paired by seed, resumable under a deadline."""

import json

import pytest

from benchmarks import cross_arch
from haba_core import load_dataset, recipe_config, distill


@pytest.fixture(scope="module")
def saved_sets(tmp_path_factory):
    """Two tiny DM sets per seed (IDC and HaBa) on the digits, saved as compute_matched --save-sets names them."""
    root = tmp_path_factory.mktemp("sets")
    train = load_dataset("digits")
    for seed in (0, 1):
        for name, param in (("idc", "idc"), ("haba", "haba")):
            cfg = recipe_config("paper-pca", objective="dm", ipc=2, iterations=2, net_width=8, seed=seed,
                                parameterization=param, device="cpu")
            distill(train, cfg).save(root / f"{name}_seed{seed}")
    return root


def _argv(sets, out, *extra):
    return [str(sets), "--dataset", "digits", "--quick", "--out", str(out), "--archs", "ConvNet,AlexNet",
            "--net-width", "8", "--device", "cpu", *extra]


def test_scores_every_set_and_coreset_on_every_network_and_pairs_by_seed(saved_sets, tmp_path, capsys):
    cross_arch.main(_argv(saved_sets, tmp_path, "--coresets", "random", "--ipc", "2", "--pairs", "haba:idc"))
    rows = json.loads((tmp_path / cross_arch.RESULTS).read_text())["rows"]
    assert {(r["variant"], r["seed"], r["arch"]) for r in rows} == {
        (v, s, a) for v in ("idc", "haba", "random-coreset") for s in (0, 1) for a in ("ConvNet", "AlexNet")}
    assert all(0 <= r["acc"] <= 100 and r["stored_bytes"] > 0 for r in rows)
    assert [r["seed"] for r in rows] == sorted(r["seed"] for r in rows)  # seed by seed: partial runs stay paired
    text = capsys.readouterr().out
    assert "mean of AlexNet" in text and "haba − idc" in text and "/2" in text  # two seeds paired


def test_rerun_skips_what_is_done_and_budget_stops_early(saved_sets, tmp_path, monkeypatch, capsys):
    cross_arch.main(_argv(saved_sets, tmp_path, "--budget-s", "0"))  # nothing starts after 0 s
    assert json.loads((tmp_path / cross_arch.RESULTS).read_text())["rows"] == []
    assert "rerun with the same --out" in capsys.readouterr().out
    cross_arch.main(_argv(saved_sets, tmp_path))
    first = json.loads((tmp_path / cross_arch.RESULTS).read_text())["rows"]
    assert len(first) == 8
    monkeypatch.setattr(cross_arch, "evaluate", lambda *a, **k: pytest.fail("re-evaluated a finished row"))
    cross_arch.main(_argv(saved_sets, tmp_path))
    assert json.loads((tmp_path / cross_arch.RESULTS).read_text())["rows"] == first


def test_a_folder_that_is_not_a_saved_set_ends_with_one_line(tmp_path):
    (tmp_path / "sets" / "notaset").mkdir(parents=True)
    with pytest.raises(SystemExit, match="not a saved set"):
        cross_arch.main(_argv(tmp_path / "sets", tmp_path / "out"))


def test_render_pairs_only_complete_sets_and_survives_convnet_alone():
    rows = [{"variant": v, "seed": s, "arch": a, "acc": acc, "stored_bytes": 1}
            for v, s, a, acc in [("a", 0, "ResNet18", 30.0), ("a", 0, "AlexNet", 40.0), ("b", 0, "ResNet18", 20.0),
                                 ("b", 0, "AlexNet", 30.0), ("a", 1, "ResNet18", 50.0), ("b", 1, "ResNet18", 10.0)]]
    text = cross_arch.render(rows, ["ResNet18", "AlexNet"], [("a", "b")])
    assert "| a − b | +10.00 | +10.00 ± 0.00 | 1/1 |" in text  # seed 1 lacks AlexNet: not paired
    assert "35.00 ± 0.00 (1)" in text  # a's cross-architecture mean counts only the complete seed
    assert "mean of " in cross_arch.render(rows, ["ConvNet"], [("a", "b")])  # no other network: no mean, no crash


def test_seeds_scored_in_separate_processes_merge_into_one_paired_table(saved_sets, tmp_path, monkeypatch, capsys):
    for seed in (0, 1):  # one process (one --out) per seed, as two CPU cores or two GPU calls would run them
        sets = [str(saved_sets / f"{v}_seed{seed}") for v in ("idc", "haba")]
        cross_arch.main([sets[0], *_argv(sets[1], tmp_path / f"out{seed}")])
    parts = [json.loads((tmp_path / f"out{s}" / cross_arch.RESULTS).read_text())["rows"] for s in (0, 1)]
    monkeypatch.setattr(cross_arch, "evaluate", lambda *a, **k: pytest.fail("re-evaluated a merged row"))
    capsys.readouterr()
    cross_arch.main(_argv(saved_sets, tmp_path / "all", "--merge", f"{tmp_path / 'out0'},{tmp_path / 'out1'}",
                          "--pairs", "haba:idc"))
    merged = json.loads((tmp_path / "all" / cross_arch.RESULTS).read_text())["rows"]
    assert merged == parts[0] + parts[1]
    assert "/2" in capsys.readouterr().out  # both seeds paired


def test_merge_refuses_a_missing_folder_and_a_row_scored_twice_differently(saved_sets, tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        cross_arch.main(_argv(saved_sets, tmp_path / "out", "--merge", str(tmp_path / "nowhere")))
    cross_arch.main(_argv(saved_sets, tmp_path / "a", "--budget-s", "0"))  # settings saved, nothing scored
    meta = json.loads((tmp_path / "a" / cross_arch.RESULTS).read_text())["meta"]
    row = {"variant": "idc", "seed": 0, "arch": "ConvNet", "acc": 50.0, "stored_bytes": 1}
    for name, acc in (("a", 50.0), ("b", 51.0)):
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / cross_arch.RESULTS).write_text(json.dumps({"meta": meta, "rows": [{**row, "acc": acc}]}))
    with pytest.raises(SystemExit, match="scored differently"):
        cross_arch.main(_argv(saved_sets, tmp_path / "out", "--merge", f"{tmp_path / 'a'},{tmp_path / 'b'}"))


def test_rows_scored_with_other_settings_are_neither_merged_nor_resumed(saved_sets, tmp_path):
    cross_arch.main(_argv(saved_sets, tmp_path / "val", "--split", "val", "--budget-s", "0"))
    with pytest.raises(SystemExit, match="other settings.*split='val'"):
        cross_arch.main(_argv(saved_sets, tmp_path / "test", "--merge", str(tmp_path / "val")))
    with pytest.raises(SystemExit, match="other settings.*split='val'"):
        cross_arch.main(_argv(saved_sets, tmp_path / "val"))  # resuming the validation folder on test
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / cross_arch.RESULTS).write_text(json.dumps({"rows": []}))
    with pytest.raises(SystemExit, match="cannot read the scoring settings"):
        cross_arch.main(_argv(saved_sets, tmp_path / "test", "--merge", str(tmp_path / "bare")))


def test_lr_overrides_the_sets_learned_one_and_is_a_scoring_setting(saved_sets, tmp_path):
    sets = str(saved_sets / "idc_seed0")
    cross_arch.main(_argv(sets, tmp_path / "a", "--archs", "AlexNet", "--lr", "0.02"))
    rows = json.loads((tmp_path / "a" / cross_arch.RESULTS).read_text())["rows"]
    assert [r["lr"] for r in rows] == [0.02]
    with pytest.raises(SystemExit, match="other settings.*lr=0.02"):
        cross_arch.main(_argv(sets, tmp_path / "a", "--archs", "AlexNet"))  # resuming at another lr
    with pytest.raises(SystemExit):
        cross_arch.main(_argv(sets, tmp_path / "b", "--lr", "0"))


def test_where_a_learned_lr_applies_is_a_scoring_setting_unless_lr_is_given(saved_sets, tmp_path, monkeypatch):
    sets = str(saved_sets / "idc_seed0")
    one = ["--archs", "AlexNet"]
    cross_arch.main(_argv(sets, tmp_path / "a", *one))
    with pytest.raises(SystemExit, match="learned_lr_on='same-network'"):
        cross_arch.main(_argv(sets, tmp_path / "a", *one, "--learned-lr-on", "every-network"))
    # results saved before the option existed used a learned lr on every network
    path = tmp_path / "a" / cross_arch.RESULTS
    doc = json.loads(path.read_text())
    del doc["meta"]["args"]["learned_lr_on"]
    path.write_text(json.dumps(doc))
    monkeypatch.setattr(cross_arch, "evaluate", lambda *a, **k: pytest.fail("re-evaluated a finished row"))
    cross_arch.main(_argv(sets, tmp_path / "a", *one, "--learned-lr-on", "every-network"))
    with pytest.raises(SystemExit, match="other settings"):
        cross_arch.main(_argv(sets, tmp_path / "a", *one))
    monkeypatch.undo()
    cross_arch.main(_argv(sets, tmp_path / "b", *one, "--lr", "0.02"))
    monkeypatch.setattr(cross_arch, "evaluate", lambda *a, **k: pytest.fail("re-evaluated a finished row"))
    cross_arch.main(_argv(sets, tmp_path / "b", *one, "--lr", "0.02", "--learned-lr-on", "every-network"))
