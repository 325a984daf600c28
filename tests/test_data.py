"""Readers on small files written here (and malformed ones), plus the bundled MNIST subset."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch

from onebyone import data
from onebyone.data import (
    ArrayDataset,
    load,
    load_cifar,
    load_image_folder,
    load_mnist_idx,
    read_idx,
)


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write_mnist(root, n=6, gz=False, prefix="train"):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    suffix = ".gz" if gz else ""
    for kind, arr in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
        raw = _idx_bytes(arr)
        path = root / f"{prefix}-{kind}{suffix}"
        path.write_bytes(gzip.compress(raw) if gz else raw)
    return images, labels


# ---- bundled -------------------------------------------------------------------------------


def test_mnist5k_split_is_stratified_and_disjoint():
    train, test = load("mnist5k", "train"), load("mnist5k", split="test")
    assert (len(train), len(test)) == (4000, 1000)
    assert train.input_size == (1, 28, 28) and train.in_channels == 1 and train.num_classes == 10
    assert np.bincount(train.labels.numpy()).tolist() == [400] * 10
    assert np.bincount(test.labels.numpy()).tolist() == [100] * 10
    digest = lambda im: hashlib.sha1(im.numpy().tobytes()).hexdigest()  # noqa: E731
    assert not {digest(i) for i in train.images} & {digest(i) for i in test.images}
    x, _y = train[0]
    assert x.dtype == torch.float32 and x.shape == (1, 28, 28)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    # A digit has ink: a real image, not an empty array.
    assert (train.images[:50].float().mean(dim=(1, 2, 3)) > 10).all()


def test_load_rejects_unknown_name_and_split(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load("mnist")
    with pytest.raises(ValueError, match="split must be one of"):
        load("mnist5k", split="validation")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(str(tmp_path / "nowhere"))


def test_subset_is_balanced_and_deterministic():
    train = load("mnist5k")
    a, b = train.subset(200, seed=3), train.subset(200, seed=3)
    assert torch.equal(a.images, b.images)
    assert np.bincount(a.labels.numpy()).tolist() == [20] * 10


# ---- IDX ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, gz):
    images, labels = _write_mnist(tmp_path, gz=gz)
    _write_mnist(tmp_path, n=3, gz=gz, prefix="t10k")
    ds = load_mnist_idx(tmp_path, "train")
    assert ds.images[:, 0].numpy().tolist() == images.tolist()
    assert ds.labels.tolist() == labels.tolist()
    assert len(load(tmp_path, "test")) == 3  # load() recognises the layout


def test_idx_malformed(tmp_path):
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(b"\x08\x03\x00\x00rubbish")
    with pytest.raises(ValueError, match=r"bad-idx3-ubyte.*bad magic"):
        read_idx(bad)
    short = tmp_path / "short-idx1-ubyte"
    short.write_bytes(struct.pack(">HBBI", 0, 0x08, 1, 10) + b"\x01\x02")
    with pytest.raises(ValueError, match=r"short-idx1-ubyte.*\(10,\).*holds 2"):
        read_idx(short)
    with pytest.raises(FileNotFoundError, match="missing-idx"):
        read_idx(tmp_path / "missing-idx")


def test_idx_labels_must_match_images(tmp_path):
    _write_mnist(tmp_path, n=6)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(ValueError, match="expected 6 labels"):
        load_mnist_idx(tmp_path)


# ---- CIFAR ----------------------------------------------------------------------------------


def _write_cifar10(root, n=4, protocol=2):
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        (root / name).write_bytes(
            pickle.dumps({b"batch_label": b"x", b"data": d, b"labels": labels}, protocol=protocol)
        )
        batches[name] = (d, labels)
    names = [f"class{i}".encode() for i in range(10)]
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=protocol))
    return batches


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_folder(tmp_path, protocol):
    batches = _write_cifar10(tmp_path, protocol=protocol)
    train = load_cifar(tmp_path, "train")
    assert len(train) == 20 and train.input_size == (3, 32, 32) and train.classes[3] == "class3"
    d, labels = batches["data_batch_2"]
    # CIFAR rows are 1024 red, then green, then blue values, each row-major 32x32.
    assert train.images[4:8].reshape(4, -1).numpy().tolist() == d.tolist()
    assert train.labels[4:8].tolist() == labels
    assert len(load(tmp_path, "test")) == 4


def test_cifar100_folder(tmp_path):
    d = np.zeros((3, 3072), np.uint8)
    for split in ("train", "test"):
        (tmp_path / split).write_bytes(
            pickle.dumps({b"data": d, b"fine_labels": [0, 99, 5], b"coarse_labels": [0, 1, 2]})
        )
    ds = load_cifar(tmp_path, "test")
    assert ds.labels.tolist() == [0, 99, 5] and ds.num_classes == 100


def test_cifar_refuses_code_in_pickle(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    (tmp_path / "data_batch_1").write_bytes(
        pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2)
    )
    with pytest.raises(ValueError, match=r"data_batch_1.*refers to (posix|os|nt)\.system"):
        load_cifar(tmp_path)
    assert not marker.exists()


def test_cifar_malformed(tmp_path):
    _write_cifar10(tmp_path)
    (tmp_path / "data_batch_3").write_bytes((tmp_path / "data_batch_3").read_bytes()[:100])
    with pytest.raises(ValueError, match=r"data_batch_3.*not a CIFAR python batch"):
        load_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [1, 2]})
    )
    with pytest.raises(ValueError, match=r"data_batch_3.*uint8 \(N, 3072\)"):
        load_cifar(tmp_path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(FileNotFoundError, match="expected CIFAR-10"):
        load_cifar(tmp_path / "sub")


# ---- image folder ---------------------------------------------------------------------------


def test_image_folder_splits_and_modes(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    for split, count in (("train", 3), ("test", 2)):
        for c in ("b_dog", "a_cat"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (6, 5), (i * 50, 10, 200)).save(tmp_path / split / c / f"{i}.png")
    ds = load_image_folder(tmp_path, "train")
    assert ds.classes == ["a_cat", "b_dog"] and len(ds) == 6 and ds.input_size == (3, 5, 6)
    assert ds.images[1, :, 0, 0].tolist() == [50, 10, 200]
    assert len(load(tmp_path, "test")) == 4
    resized = load_image_folder(tmp_path, "test", size=(4, 4))
    assert resized.input_size == (3, 4, 4)


def test_image_folder_malformed(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    (tmp_path / "x").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "x" / "a.png")
    Image.new("L", (5, 4)).save(tmp_path / "x" / "b.png")
    (tmp_path / "x" / "c.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"c\.png.*expected a valid image"):
        load_image_folder(tmp_path, "train")
    (tmp_path / "x" / "c.png").unlink()
    for i in range(3):
        Image.new("L", (4, 4)).save(tmp_path / "x" / f"d{i}.png")
    with pytest.raises(ValueError, match="pass size"):
        load_image_folder(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="one subfolder per class"):
        load_image_folder(tmp_path / "x", "train")


# ---- npz and ArrayDataset -------------------------------------------------------------------


def test_npz_and_dataset_validation(tmp_path):
    p = tmp_path / "mine.npz"
    np.savez(p, train_images=np.ones((3, 2, 2), np.uint8), train_labels=np.array([0, 1, 1]))
    assert load(p).labels.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match=r"mine\.npz.*test_images"):
        load(p, "test")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk\.npz"):
        load(tmp_path / "junk.npz")
    with pytest.raises(TypeError, match="images must be uint8"):
        ArrayDataset(np.zeros((2, 4, 4), np.float32), [0, 1])
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        ArrayDataset(np.zeros((2, 4, 4), np.uint8), [0, 1, 2])
    assert "load" in data.__all__
