"""Data-loading layer: every loader on tiny fixtures in the real on-disk formats (no network, no /work/shared)."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import data_fixtures as fx
from haba_core.data import KNOWN_DATASETS, ImageDataset, default_cache_dir, default_data_root, load_dataset
from haba_core.data import imagefolder as imagefolder_mod
from haba_core.data import torchvision_sets
from haba_core.data import NORMALIZATION, canonical_name
from haba_core.errors import DatasetNotFoundError, FormatError, UnknownNameError


def _tree(root: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def _cache() -> Path:
    return Path(os.environ["HABA_CACHE"])


# --- ImageDataset ----------------------------------------------------------------------------


def _toy() -> ImageDataset:
    images = torch.rand(6, 2, 3, 3)
    labels = torch.tensor([0, 1, 2, 1, 0, 1])
    return ImageDataset("toy", images, labels, ["a", "b", "c", "d"], (0.5, 0.25), (0.2, 0.4), "train")


def test_image_dataset_api():
    ds = _toy()
    assert len(ds) == 6 and ds.num_classes == 4 and ds.image_shape == (2, 3, 3)
    expected = (ds.images - torch.tensor([0.5, 0.25]).view(1, 2, 1, 1)) / torch.tensor([0.2, 0.4]).view(1, 2, 1, 1)
    out = ds.normalized()
    assert out.dtype == torch.float32 and torch.allclose(out, expected)
    assert ds.class_indices(1).tolist() == [1, 3, 5] and ds.class_indices(1).dtype == torch.int64
    assert ds.class_indices(3).numel() == 0
    assert ds.samples_per_class() == [2, 3, 1, 0]
    sub = ds.subset([5, 0])
    assert sub.labels.tolist() == [1, 0] and torch.equal(sub.images[0], ds.images[5])
    assert (sub.name, sub.classes, sub.mean, sub.std, sub.split) == (ds.name, ds.classes, ds.mean, ds.std, ds.split)
    assert len(ds.subset(torch.tensor([], dtype=torch.int64))) == 0
    assert "n=6" in repr(ds)
    with pytest.raises(ValueError):
        ImageDataset("bad", torch.rand(3, 1, 2, 2), torch.zeros(2, dtype=torch.int64), ["a"], (0.0,), (1.0,), "train")


# --- names, splits, defaults -----------------------------------------------------------------


def test_names_aliases_and_errors():
    for alias in ("fmnist", "fashion_mnist", "FashionMNIST", "Fashion-MNIST"):
        assert canonical_name(alias) == "fashion-mnist"
    assert canonical_name("CIFAR10") == "cifar10"
    with pytest.raises(UnknownNameError) as err:
        load_dataset("imagenet")
    for known in KNOWN_DATASETS:
        assert known in str(err.value)
    assert "imagefolder:<dir-or-tar.gz>" in str(err.value)
    with pytest.raises(ValueError, match="train|test"):
        load_dataset("digits", split="validation")


def test_default_locations(monkeypatch, tmp_path):
    monkeypatch.setenv("HABA_DATA_ROOT", str(tmp_path / "d"))
    assert default_data_root() == tmp_path / "d"
    monkeypatch.delenv("HABA_DATA_ROOT")
    assert default_data_root() == Path.cwd() / "data"
    assert default_cache_dir() == _cache()
    monkeypatch.delenv("HABA_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "haba"


# --- digits ----------------------------------------------------------------------------------


def test_digits_splits():
    tr, te = load_dataset("digits"), load_dataset("Digits", split="test")
    assert (len(tr), len(te)) == (1257, 540)
    assert tr.image_shape == (1, 8, 8) and tr.images.dtype == torch.float32 and tr.labels.dtype == torch.int64
    assert 0.0 <= float(tr.images.min()) and float(tr.images.max()) <= 1.0 and float(tr.images.max()) == 1.0
    assert tr.classes == [str(i) for i in range(10)]
    assert min(tr.samples_per_class()) >= 120 and max(tr.samples_per_class()) <= 128  # stratified 70 %
    assert min(te.samples_per_class()) >= 52 and max(te.samples_per_class()) <= 55
    assert tr.mean == te.mean and tr.std == te.std
    assert tr.mean[0] == pytest.approx(tr.images.mean().item(), abs=1e-6)
    assert tr.std[0] == pytest.approx(tr.images.std(unbiased=False).item(), abs=1e-6)
    again = load_dataset("digits")
    assert torch.equal(again.images, tr.images) and torch.equal(again.labels, tr.labels)


# --- CIFAR -----------------------------------------------------------------------------------


def test_cifar10_restricted_reader(tmp_path):
    written = fx.write_cifar10(tmp_path)
    tr = load_dataset("cifar10", root=tmp_path)
    te = load_dataset("cifar10", root=tmp_path, split="test")
    assert (len(tr), len(te)) == (20, 6) and tr.image_shape == (3, 32, 32)
    assert tr.classes == fx.CIFAR10_NAMES and (tr.mean, tr.std) == NORMALIZATION["cifar10"]
    assert tr.labels.tolist() == written["train_y"].tolist()
    expected = torch.from_numpy(written["train_x"].reshape(-1, 3, 32, 32)).float() / 255
    assert torch.equal(tr.images, expected)
    assert torch.equal(te.images, torch.from_numpy(written["test_x"].reshape(-1, 3, 32, 32)).float() / 255)


def test_cifar10_torchvision_path_matches(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    fx.write_cifar10(tmp_path)
    ours = load_dataset("cifar10", root=tmp_path)
    assert not torchvision_sets.official_cifar_files(torchvision_sets.CIFAR10, tmp_path)
    # Pretend the md5 sums match the official release, so torchvision itself reads the batches.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(torchvision_sets, "official_cifar_files", lambda *a, **k: True)
    theirs = load_dataset("cifar10", root=tmp_path)
    assert torch.equal(ours.images, theirs.images) and torch.equal(ours.labels, theirs.labels)
    assert ours.classes == theirs.classes


def test_cifar100_fine_labels(tmp_path):
    written = fx.write_cifar100(tmp_path)
    te = load_dataset("cifar100", root=tmp_path, split="test")
    assert len(te) == 4 and te.num_classes == 100 and te.classes[7] == "fine07"
    assert te.labels.tolist() == written["test_y"].tolist()
    assert (te.mean, te.std) == NORMALIZATION["cifar100"]


def test_cifar_pickle_cannot_run_code(tmp_path):
    fx.write_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({"data": Evil()}, protocol=2))
    with pytest.raises(FormatError, match="not allowed"):
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists()


def test_cifar_missing_files(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "data_batch_1" in msg and "batches.meta" in msg
    assert "download=True" in msg and "cifar-10-python.tar.gz" in msg
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_dataset("cifar100", root=tmp_path, split="test")
    assert not any(_cache().iterdir())


# --- MNIST / Fashion-MNIST -------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout,gz", [("MNIST/raw", False), ("MNIST/raw", True), ("flat", True), ("flat", False)]
)
def test_mnist_layouts(tmp_path, layout, gz):
    root = tmp_path / "root"
    written = fx.write_idx_set(root if layout == "flat" else root / layout, gz=gz)
    before = _tree(root)
    for split in ("train", "test"):
        ds = load_dataset("mnist", root=root, split=split)
        assert len(ds) == len(written[f"{split}_y"]) and ds.image_shape == (1, 28, 28)
        assert torch.equal(ds.images, torch.from_numpy(written[f"{split}_x"]).unsqueeze(1).float() / 255)
        assert torch.equal(ds.labels, torch.from_numpy(written[f"{split}_y"]))
        assert ds.labels.dtype == torch.int64 and (ds.mean, ds.std) == NORMALIZATION["mnist"]
    assert _tree(root) == before  # nothing written into the data root
    assert (_cache() / "idx").is_dir() == gz  # only .gz files are decompressed (into the cache)


def test_fashion_mnist_torchvision_layout(tmp_path):
    fx.write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=False)
    ds = load_dataset("fmnist", root=tmp_path, split="test")
    assert ds.name == "fashion-mnist" and len(ds) == 5 and ds.classes[0] == "T-shirt/top"
    assert (ds.mean, ds.std) == NORMALIZATION["fashion-mnist"]


def test_mnist_download_is_passed_to_torchvision(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    calls = []

    def fake_download(self):
        calls.append(self.raw_folder)
        fx.write_idx_set(Path(self.raw_folder), gz=False)

    monkeypatch.setattr(MNIST, "download", fake_download)
    ds = load_dataset("mnist", root=tmp_path, download=True)
    assert calls == [str(tmp_path / "MNIST" / "raw")] and len(ds) == 12


def test_mnist_missing_files(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "train-images-idx3-ubyte" in msg and "download=True" in msg
    assert not any(_cache().iterdir())


# --- SVHN ------------------------------------------------------------------------------------


def test_svhn_mat(tmp_path):
    written = fx.write_svhn(tmp_path)
    ds = load_dataset("svhn", root=tmp_path)
    assert len(ds) == 7 and ds.image_shape == (3, 32, 32) and ds.classes == [str(i) for i in range(10)]
    x = written["train_x"]  # H x W x C x N
    assert ds.images[2, 1, 5, 9].item() == pytest.approx(x[5, 9, 1, 2] / 255)
    expected = written["train_y"].astype(np.int64).squeeze() % 10
    assert ds.labels.tolist() == expected.tolist() and ds.labels[0].item() == 0
    assert (ds.mean, ds.std) == NORMALIZATION["svhn"]
    with pytest.raises(DatasetNotFoundError, match="test_32x32.mat"):
        load_dataset("svhn", root=tmp_path / "nowhere", split="test")


# --- ImageFolder -----------------------------------------------------------------------------


def test_imagefolder_directory_jpeg(tmp_path):
    src = fx.write_imagefolder(tmp_path / "set")
    tr = load_dataset(f"imagefolder:{src}")
    te = load_dataset(f"imagefolder:{src}", split="test")
    assert tr.name == f"imagefolder:{src}" and tr.classes == ["cat", "dog", "eel"]
    assert (len(tr), len(te)) == (9, 6) and tr.image_shape == (3, 10, 12)
    assert tr.samples_per_class() == [3, 3, 3] and te.labels.tolist() == [0, 0, 1, 1, 2, 2]
    cat = tr.images[tr.class_indices(0)].mean(dim=(0, 2, 3))
    assert torch.allclose(cat, torch.tensor([200, 30, 30]) / 255, atol=0.03)
    assert te.mean == tr.mean and te.std == tr.std
    assert tr.mean[2] == pytest.approx(tr.images[:, 2].mean().item(), abs=1e-5)


def test_image_extensions_match_torchvision():
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from haba_core.data import folder_layout

    assert folder_layout.IMG_EXTENSIONS == IMG_EXTENSIONS


def test_imagefolder_grayscale_png_keeps_one_channel(tmp_path):
    src = fx.write_imagefolder(tmp_path / "g", ext="png", gray=True)
    ds = load_dataset(f"imagefolder:{src}", split="test")
    assert ds.image_shape == (1, 10, 12) and len(ds.mean) == 1
    assert ds.images[0, 0, 0, 0].item() == pytest.approx(200 / 255)


def test_imagefolder_mixed_sizes_rejected(tmp_path):
    src = fx.write_imagefolder(tmp_path / "m", ext="png")
    from PIL import Image

    Image.new("RGB", (5, 5)).save(src / "train" / "dog" / "odd.png")
    with pytest.raises(FormatError, match="share one size"):
        load_dataset(f"imagefolder:{src}")
    assert not list(_cache().rglob("*.safetensors"))


def test_imagefolder_tarball_extracts_once_and_caches_tensors(tmp_path, monkeypatch):
    src = fx.write_imagefolder(tmp_path / "set")
    archive = fx.make_tarball(src, tmp_path / "set.tar.gz", wrap="myset")
    name = f"imagefolder:{archive}"
    first_test = load_dataset(name, split="test")
    first_train = load_dataset(name)
    assert (len(first_train), len(first_test)) == (9, 6) and first_train.classes == ["cat", "dog", "eel"]
    assert list((_cache() / "imagefolder").glob("*-tensors/train.safetensors"))
    assert list((_cache() / "imagefolder").glob("*-tensors/test.safetensors"))

    def boom(*args, **kwargs):
        raise AssertionError("decoded or extracted again")

    monkeypatch.setattr(imagefolder_mod, "decode_images", boom)
    monkeypatch.setattr(imagefolder_mod, "extract_once", boom)
    for split, first in (("train", first_train), ("test", first_test)):
        again = load_dataset(name, split=split)
        assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
        assert (again.classes, again.mean, again.std) == (first.classes, first.mean, first.std)


def test_imagefolder_tgz_at_top_level(tmp_path):
    src = fx.write_imagefolder(tmp_path / "set", per_class={"train": 1, "test": 1})
    archive = fx.make_tarball(src, tmp_path / "set.tgz")
    assert len(load_dataset(f"imagefolder:{archive}", split="test")) == 3


def test_imagefolder_tarball_path_traversal_refused(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for member in ("train/cat/0.jpg", "../escaped.txt"):
            info = tarfile.TarInfo(member)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(FormatError, match="outside"):
        load_dataset(f"imagefolder:{archive}")
    assert not (tmp_path / "escaped.txt").exists() and not (_cache().parent / "escaped.txt").exists()
    assert not [p for p in (_cache() / "imagefolder").iterdir()]  # no partial extraction left


def test_imagefolder_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nope.tar.gz"):
        load_dataset(f"imagefolder:{tmp_path / 'nope.tar.gz'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="train/<class>"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")
    bad = tmp_path / "bad.tar.gz"
    fx.write_imagefolder(tmp_path / "only", per_class={"test": 1})
    with tarfile.open(bad, "w:gz") as tar:
        tar.add(tmp_path / "only" / "test", arcname="test")
    with pytest.raises(DatasetNotFoundError, match="train/<class>"):
        load_dataset(f"imagefolder:{bad}")
    assert not [p for p in (_cache() / "imagefolder").iterdir()]
