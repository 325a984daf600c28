"""Build ``src/onebyone/data/mnist5k.npz`` from ``../shared/data/mnist_5k.csv.gz``.

Run once at build time (``python scripts/make_mnist5k.py``); the package reads only the npz.

The CSV has one digit per row: 784 pixel values (row-major 28x28, 0..255) then the label.
The split is stratified and deterministic: within each class, the rows are shuffled with a
fixed seed and the first 80% go to train, the rest to test (4,000 / 1,000 in all).
The images are a subset of the MNIST database (LeCun, Cortes and Burges), CC BY-SA 3.0.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SRC = ROOT.parent / "shared" / "data" / "mnist_5k.csv.gz"
DEFAULT_DST = ROOT / "src" / "onebyone" / "data" / "mnist5k.npz"
SEED = 20131216  # arbitrary, fixed: the split must never change between builds
TRAIN_FRACTION = 0.8


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{path}: expected rows of 784 pixels + 1 label, got shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: pixel values must be in 0..255 and labels in 0..9")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def stratified_split(labels: np.ndarray, *, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = round(len(idx) * TRAIN_FRACTION)
        train.append(idx[:k])
        test.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--dst", type=Path, default=DEFAULT_DST)
    args = parser.parse_args()
    images, labels = read_csv(args.src)
    train, test = stratified_split(labels)
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.dst.with_name(args.dst.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        train_images=images[train],
        train_labels=labels[train],
        test_images=images[test],
        test_labels=labels[test],
    )
    tmp.replace(args.dst)
    print(
        f"wrote {args.dst} ({args.dst.stat().st_size:,} bytes): "
        f"train {len(train)}, test {len(test)}"
    )


if __name__ == "__main__":
    main()
