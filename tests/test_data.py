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


# ---- hostile files (issue 14: inputs that allocate without bound, messages) ------------------


def _idx_header(type_code: int, dims) -> bytes:
    return struct.pack(">HBB", 0, type_code, len(dims)) + struct.pack(f">{len(dims)}i", *dims)


class _Call:
    """Pickles as ``func(*args)``: how a hostile batch makes the unpickler call a global."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _cifar_file(path, data, labels, protocol=2):
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=protocol))
    return path


@pytest.mark.parametrize(
    "call",
    [
        # numpy.ndarray(shape, dtype) allocates uninitialised memory of any size.
        lambda n: _Call(np.ndarray, (n, 3072), "u1"),
        # _reconstruct(ndarray, shape, dtype) likewise (numpy pickles it with shape (0,)).
        lambda n: _Call(np.ndarray.__reduce__(np.zeros(1))[0], np.ndarray, (n, 3072), b"u1"),
    ],
    ids=["ndarray", "_reconstruct"],
)
def test_cifar_tiny_file_cannot_allocate_images(tmp_path, call):
    import tracemalloc

    p = _cifar_file(tmp_path / "data_batch_1", call(2000), [0, 1])
    assert p.stat().st_size < 300  # a small file that would become 6 MB of images
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"data_batch_1"):
            data.read_cifar_batch(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_cifar_array_sizes_are_checked_against_the_bytes(tmp_path):
    class Lying:  # an ndarray's pickled state whose shape claims more than its bytes hold
        def __reduce__(self):
            rebuild, args, _state = np.zeros(1, np.uint8).__reduce__()
            return rebuild, args, (1, (1000, 3072), np.dtype(np.uint8), False, b"\x00" * 3072)

    p = _cifar_file(tmp_path / "data_batch_1", Lying(), [0] * 1000)
    with pytest.raises(ValueError, match=r"data_batch_1.*\(1000, 3072\).*3072 bytes"):
        data.read_cifar_batch(p)


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_real_batch_layout_still_loads(tmp_path, protocol):
    # What a real CIFAR-10 batch holds: bytes, a list of ints, a uint8 array, a list of bytes.
    d = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": [6, 9], b"data": d,
             b"filenames": [b"a.png", b"b.png"]}  # fmt: skip
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=protocol))
    out = data.read_cifar_batch(tmp_path / "data_batch_1")
    assert out["labels"] == [6, 9] and out["filenames"] == [b"a.png", b"b.png"]
    assert out["data"].dtype == np.uint8 and np.array_equal(out["data"], d)
    assert out["data"].flags.writeable
    fortran = {b"data": np.asfortranarray(d), b"labels": np.array([1, 2], np.int32)}
    (tmp_path / "f").write_bytes(pickle.dumps(fortran, protocol=protocol))
    got = data.read_cifar_batch(tmp_path / "f")
    assert np.array_equal(got["data"], d) and got["labels"].tolist() == [1, 2]


def _py2_batch(data: bytes, shape: tuple[int, int], labels: list[int]) -> bytes:
    """A batch as the real CIFAR files are: Python 2's cPickle, protocol 2, str as BINSTRING.

    Assembled opcode by opcode (Python 3 cannot write Python 2 strings); numpy arrays pickle as
    ``_reconstruct(ndarray, (0,), 'b')`` then BUILD with ``(1, shape, dtype, False, data)``.
    """

    def string(b: bytes) -> bytes:  # SHORT_BINSTRING
        return b"U" + bytes([len(b)]) + b

    out = b"\x80\x02}q\x00(" + string(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85q\x03"
    out += string(b"b") + b"\x87q\x04Rq\x05(K\x01"
    out += b"".join(b"M" + struct.pack("<H", d) for d in shape) + b"\x86"
    out += b"cnumpy\ndtype\nq\x06" + string(b"u1") + b"K\x00K\x01\x87Rq\x07(K\x03" + string(b"|")
    out += b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    out += b"\x89T" + struct.pack("<I", len(data)) + data + b"tb"
    out += string(b"labels") + b"]q\x08(" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return out + string(b"batch_label") + string(b"training batch 1 of 5") + b"u."


def test_cifar_python2_batch_loads(tmp_path):
    d = np.arange(2 * 3072).astype(np.uint8).reshape(2, 3072)
    raw = _py2_batch(d.tobytes(), (2, 3072), [6, 9])
    assert pickle.loads(raw, encoding="bytes")[b"labels"] == [6, 9]  # the reference reader agrees
    (tmp_path / "data_batch_1").write_bytes(raw)
    out = data.read_cifar_batch(tmp_path / "data_batch_1")
    assert np.array_equal(out["data"], d) and out["labels"] == [6, 9]
    assert out["batch_label"] == b"training batch 1 of 5"
    # The same layout with a shape its bytes do not fill is refused before allocating.
    (tmp_path / "data_batch_1").write_bytes(_py2_batch(d.tobytes(), (60000, 3072), [6, 9]))
    with pytest.raises(ValueError, match=r"data_batch_1.*\(60000, 3072\)"):
        data.read_cifar_batch(tmp_path / "data_batch_1")


def test_cifar_refuses_non_numeric_dtypes(tmp_path):
    p = _cifar_file(tmp_path / "data_batch_1", np.zeros(2, dtype=[("a", "u1")]), [0, 1])
    with pytest.raises(ValueError, match=r"data_batch_1.*dtype"):
        data.read_cifar_batch(p)


_HUGE_LABELS = [2**40, 30_000_000]


@pytest.mark.parametrize("huge", _HUGE_LABELS)
def test_cifar_huge_label_is_refused(tmp_path, huge):
    _cifar_file(tmp_path / "test_batch", np.zeros((2, 3072), np.uint8), [0, huge])
    with pytest.raises(ValueError, match=rf"test_batch.*label {huge}.*at most 100000 classes"):
        load_cifar(tmp_path, "test")


@pytest.mark.parametrize("labels", [[0, 2**70], [0, "1"], [0, 1.5], [0, True]])
def test_cifar_labels_must_be_integers(tmp_path, labels):
    _cifar_file(tmp_path / "test_batch", np.zeros((2, 3072), np.uint8), labels)
    with pytest.raises(ValueError, match=r"test_batch.*labels"):
        load_cifar(tmp_path, "test")


def test_idx_huge_label_is_refused(tmp_path):
    _write_mnist(tmp_path, n=2)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(_idx_header(0x0C, (2,)) + struct.pack(">2i", 0, 2**31 - 1))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.*label 2147483647"):
        load_mnist_idx(tmp_path)
    labels.write_bytes(_idx_header(0x0C, (2,)) + struct.pack(">2i", 0, -3))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.*label -3"):
        load_mnist_idx(tmp_path)


@pytest.mark.parametrize("huge", _HUGE_LABELS)
def test_npz_huge_label_is_refused(tmp_path, huge):
    p = tmp_path / "big.npz"
    np.savez(p, train_images=np.zeros((2, 4, 4), np.uint8), train_labels=np.array([0, huge]))
    with pytest.raises(ValueError, match=rf"big\.npz.*label {huge}"):
        load(p)


def test_dataset_label_bound_is_relative_to_the_data():
    # More classes than images is fine up to the floor (a CIFAR-100 test batch of 3 images)...
    assert ArrayDataset(np.zeros((1, 2, 2), np.uint8), [99_999]).num_classes == 100_000
    with pytest.raises(ValueError, match=r"label 100000.*at most 100000 classes"):
        ArrayDataset(np.zeros((1, 2, 2), np.uint8), [100_000])
    # ...and beyond it, as many classes as there are images.
    n = 100_001
    assert ArrayDataset(np.zeros((n, 1, 1), np.uint8), np.arange(n)).num_classes == n


def test_idx_gzip_bomb_is_not_inflated(tmp_path):
    import tracemalloc

    header = _idx_header(0x08, (1, 28, 28))
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip.compress(header + bytes(32 << 20), compresslevel=1))
    assert bomb.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz.*more data than"):
            read_idx(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # the header declares 784 bytes; 32 MiB were never held


def test_idx_gzip_header_larger_than_deflate_allows(tmp_path):
    # Deflate inflates at most ~1032x: a 100-byte file cannot hold 60000 x 28 x 28 bytes.
    bomb = tmp_path / "t10k-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip.compress(_idx_header(0x08, (60000, 28, 28))))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz.*47040000 data bytes"):
        read_idx(bomb)


@pytest.mark.parametrize(
    "dims", [(0, -5), (-1, 28, 28), (65536, 65536, 65536, 65536), (2**31 - 1,) * 3]
)
@pytest.mark.parametrize("gz", [False, True])
def test_idx_absurd_dims_name_the_file(tmp_path, dims, gz):
    p = tmp_path / ("weird-idx3-ubyte" + (".gz" if gz else ""))
    raw = _idx_header(0x08, dims)
    p.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=r"weird-idx3-ubyte.*dimension|weird-idx3-ubyte.*bytes"):
        read_idx(p)


def test_idx_empty_test_split_fails_at_load(tmp_path):
    _write_mnist(tmp_path, n=6)
    _write_mnist(tmp_path, n=0, prefix="t10k")
    assert len(load(tmp_path, "train")) == 6
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.*no images"):
        load(tmp_path, "test")


def test_train_cli_refuses_empty_test_split_before_training(tmp_path):
    from typer.testing import CliRunner

    from onebyone.cli import app

    _write_mnist(tmp_path, n=6)
    _write_mnist(tmp_path, n=0, prefix="t10k")
    out = tmp_path / "run"
    args = ["train", "tutorial_base", "--data", str(tmp_path), "--out", str(out), "--quiet",
            "--device", "cpu", "--epochs", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "no images" in result.output and not (out / "state.json").exists()


def test_npz_float_labels_are_not_truncated(tmp_path):
    p = tmp_path / "f.npz"
    images = np.zeros((3, 2, 2), np.uint8)
    np.savez(p, train_images=images, train_labels=np.array([0.0, 1.0, 2.0]))
    assert load(p).labels.tolist() == [0, 1, 2]  # whole numbers stored as floats are fine
    np.savez(p, train_images=images, train_labels=np.array([0.0, 1.5, 2.0]))
    with pytest.raises(ValueError, match=r"f\.npz.*label 1\.5 \(index 1\).*whole number"):
        load(p)
    np.savez(p, train_images=images, train_labels=np.array([0.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match=r"f\.npz.*label nan \(index 1\)"):
        load(p)
    np.savez(p, train_images=images, train_labels=np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match=r"f\.npz.*integer train_labels.*<U1"):
        load(p)


@pytest.mark.parametrize(
    "raw",
    [
        # LONG_BINPUT 2**31-1: the C unpickler would grow (and zero) a 16 GiB memo table.
        b"\x80\x02}r\xff\xff\xff\x7f.",
        # BYTEARRAY8 claiming 2**40 bytes in a 20-byte file: allocated before it is read.
        b"\x80\x05\x96" + struct.pack("<Q", 2**40) + b".",
        b"\x80\x02X" + struct.pack("<I", 2**31) + b".",  # BINUNICODE likewise
    ],
    ids=["memo", "bytearray8", "binunicode"],
)
def test_cifar_forged_lengths_are_refused_before_allocating(tmp_path, raw):
    # Hardening (the old reader failed too, after trying the allocation): now the scan refuses.
    p = tmp_path / "test_batch"
    p.write_bytes(raw)
    with pytest.raises(ValueError, match=r"test_batch"):
        data.read_cifar_batch(p)


def test_npz_header_cannot_declare_more_than_the_archive_holds(tmp_path):
    import io
    import tracemalloc
    import zipfile

    def npy(shape, payload):
        buf = io.BytesIO()
        header = {"descr": "|u1", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(buf, header)
        return buf.getvalue() + payload

    p = tmp_path / "bomb.npz"
    with zipfile.ZipFile(p, "w") as zf:  # stored, not compressed: 200 bytes in all
        zf.writestr("train_images.npy", npy((1_000_000, 28, 28), b"\x00" * 16))
        zf.writestr("train_labels.npy", npy((1_000_000,), b""))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"bomb\.npz.*train_images.*\(1000000, 28, 28\)"):
            load(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # np.load would have allocated the declared 784 MB first


def test_image_folder_empty_holdout_test_split_is_named(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):  # fewer than 5: every 5th image is held out, so none is
            Image.new("L", (4, 4), i).save(tmp_path / c / f"{i}.png")
    assert len(load(tmp_path, "train")) == 6
    with pytest.raises(ValueError, match=r"test split holds no images.*at least 5 images"):
        load(tmp_path, "test")


def test_npz_with_a_corrupt_npy_header_names_the_file(tmp_path):
    import io
    import zipfile

    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 4, 4), np.uint8))
    good = buf.getvalue()
    p = tmp_path / "set.npz"
    # A bad magic; a null byte (Python 3.12+ tokenize raises TokenError on it); a dict never
    # closed (numpy's fallback parser for old headers raises tokenize.TokenError on any Python).
    for bad in (b"\x93NUMPX" + good[6:], good.replace(b"'shape'", b"'shap\x00'"), good.replace(b"), }", b"),  ")):
        assert len(bad) == len(good) and bad != good
        with zipfile.ZipFile(p, "w") as zf:  # a valid archive (CRCs right) around a bad .npy
            zf.writestr("train_images.npy", bad)
            zf.writestr("train_labels.npy", good)
        with pytest.raises(ValueError, match=r"set\.npz' train_images: not a valid \.npy array"):
            load(p)


@pytest.mark.parametrize(
    "evil",
    [
        # BUILD with a (None, {name: value}) state runs setattr on what is on the stack: here on
        # the function standing for _codecs.encode, which every later file would then use.
        b"\x80\x02c_codecs\nencode\nN}X\x0c\x00\x00\x00__defaults__(X\x01\x00\x00\x00xts\x86b.",
        # and a second BUILD on an array, after its data was set.
        None,
    ],
    ids=["global", "array-twice"],
)
def test_cifar_batch_cannot_modify_the_readers_globals(tmp_path, evil):
    if evil is None:
        good = pickle.dumps(np.zeros(2, np.uint8), protocol=5)
        evil = good[:-1] + b"(K\x01K\x02\x85cnumpy\ndtype\nX\x02\x00\x00\x00u1\x89\x88\x87RC\x00tb."
    (tmp_path / "test_batch").write_bytes(evil)
    with pytest.raises(ValueError, match=r"test_batch.*(tries to modify _codecs\.encode|twice)"):
        data.read_cifar_batch(tmp_path / "test_batch")
    _cifar_file(tmp_path / "data_batch_1", np.zeros((2, 3072), np.uint8), [0, 1], protocol=5)
    assert data.read_cifar_batch(tmp_path / "data_batch_1")["labels"] == [0, 1]  # still works
