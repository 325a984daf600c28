"""The bundled dataset: 5,000 MNIST digits (500 per class), split 4,000 / 1,000.

A subset of the MNIST database by Yann LeCun, Corinna Cortes and Christopher J.C. Burges
(CC BY-SA 3.0), shipped inside the package as ``mnist5k.npz`` so it works offline.
Built by ``scripts/make_mnist5k.py`` with a deterministic class-stratified split.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from onebyone.data.dataset import ArrayDataset

__all__ = ["BUNDLED", "load_mnist5k"]

BUNDLED = ("mnist5k",)


def load_mnist5k(split: str = "train") -> ArrayDataset:
    """Load the bundled MNIST subset: ``"train"`` (4,000 digits) or ``"test"`` (1,000).

    Example:
        >>> ds = load_mnist5k("test")
        >>> len(ds), ds.input_size, ds.num_classes
        (1000, (1, 28, 28), 10)
    """
    from onebyone._checks import check_choice

    check_choice("split", split, ("train", "test"))
    ref = resources.files("onebyone.data").joinpath("mnist5k.npz")
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as npz:
        images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
    return ArrayDataset(images, labels.astype(np.int64), name=f"mnist5k:{split}")
