import json

import pytest
import torch

from haba_core import FactorizedDataset, FormatError, HallucinatorConfig, Preprocessor, SyntheticSet, ZCA
from haba_core.factorized_dataset import META_FILE, TENSOR_FILE


def make(zca=False, lr=None):
    torch.manual_seed(0)
    synth = SyntheticSet(torch.randn(6, 3, 8, 8), torch.tensor([0, 0, 1, 1, 2, 2]), (3, 8, 8), 3,
                         num_hallucinators=2, hallucinator_config=HallucinatorConfig(depth=2))
    pre = Preprocessor((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    if zca:
        pre.zca = ZCA(0.1).fit(torch.randn(64, 3, 8, 8))
    return FactorizedDataset(synth, pre, ["a", "b", "c"], {"dataset": "x", "objective": "dm"}, lr)


@pytest.mark.parametrize("zca,lr", [(False, None), (True, 0.02)])
def test_round_trip_is_exact(tmp_path, zca, lr):
    fd = make(zca, lr)
    fd.save(tmp_path)
    again = FactorizedDataset.load(tmp_path)
    for k, v in fd.tensors().items():
        assert torch.equal(v, again.tensors()[k]), k
    assert again.learned_lr == fd.learned_lr and (lr is None or abs(again.learned_lr - lr) < 1e-8) and again.classes == ["a", "b", "c"]
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(fd.preprocessor(x), again.preprocessor(x))
    torch.testing.assert_close(fd.synthetic.compose(torch.arange(6), torch.tensor([0, 1, 0, 1, 0, 1])),
                               again.synthetic.compose(torch.arange(6), torch.tensor([0, 1, 0, 1, 0, 1])))


def test_no_pickle_on_disk(tmp_path):
    make().save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [TENSOR_FILE, META_FILE]
    json.loads((tmp_path / META_FILE).read_text())


def test_truncated_file_raises(tmp_path):
    make().save(tmp_path)
    data = (tmp_path / TENSOR_FILE).read_bytes()
    (tmp_path / TENSOR_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError):
        FactorizedDataset.load(tmp_path)
    with pytest.raises(FormatError):
        FactorizedDataset.load(tmp_path, verify=False)


def test_tampered_file_raises(tmp_path):
    make().save(tmp_path)
    data = bytearray((tmp_path / TENSOR_FILE).read_bytes())
    data[-5] ^= 0xFF
    (tmp_path / TENSOR_FILE).write_bytes(bytes(data))
    with pytest.raises(FormatError, match="checksum"):
        FactorizedDataset.load(tmp_path)


def test_meta_disagreeing_with_shapes_raises(tmp_path):
    make().save(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    meta["num_bases"] = 7
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="checksum"):  # meta.json is covered by meta_sha256 (issue 16)
        FactorizedDataset.load(tmp_path)
    with pytest.raises(FormatError, match="bases have shape"):
        FactorizedDataset.load(tmp_path, verify=False)
    meta["num_bases"] = 6
    meta["hallucinator"]["depth"] = 1
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="hallucinator"):
        FactorizedDataset.load(tmp_path, verify=False)


def test_missing_and_garbled_files_raise(tmp_path):
    with pytest.raises(FormatError, match="missing"):
        FactorizedDataset.load(tmp_path)
    make().save(tmp_path)
    (tmp_path / META_FILE).write_text("{not json")
    with pytest.raises(FormatError, match="JSON"):
        FactorizedDataset.load(tmp_path)


def test_from_tensors_rejects_bad_values():
    fd = make()
    tensors, meta = fd.tensors(), fd.describe()
    bad = dict(tensors, labels=torch.tensor([0, 0, 1, 1, 2, 9]))
    with pytest.raises(FormatError, match="labels"):
        FactorizedDataset.from_tensors(bad, meta)
    nan = dict(tensors, bases=tensors["bases"].clone())
    nan["bases"][0, 0, 0, 0] = float("nan")
    with pytest.raises(FormatError, match="NaN"):
        FactorizedDataset.from_tensors(nan, meta)


def test_dataset_protocol_composes_online():
    fd = make()
    assert len(fd) == 6
    x, y = fd[3]
    assert x.shape == (3, 8, 8) and int(y) == 1
    imgs, labels = fd.materialize()
    assert imgs.shape == (12, 3, 8, 8)
    seen = {tuple(fd.sample_epoch(torch.Generator().manual_seed(s))[0][0].flatten()[:3].tolist()) for s in range(8)}
    assert len(seen) == 2  # basis 0 went through both hallucinators across epochs


def test_sample_epoch_can_compose_several_hallucinators_per_basis():
    fd = make()
    imgs, labels = fd.sample_epoch(torch.Generator().manual_seed(0), per_basis=2)
    assert imgs.shape == (12, 3, 8, 8) and torch.bincount(labels).tolist() == [4, 4, 4]
    full, _ = fd.materialize()
    # every composed pair appears exactly once (ordering aside)
    assert torch.allclose(imgs.flatten(1).sum(0), full.flatten(1).sum(0), atol=1e-4)
