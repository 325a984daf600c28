"""Data: the bundled MNIST subset and readers for users' own datasets. No downloads.

>>> from onebyone import data
>>> ds = data.load("mnist5k", split="test")
>>> ds.in_channels, ds.num_classes, len(ds)
(1, 10, 1000)
"""

from onebyone.data.bundled import load_mnist5k
from onebyone.data.cifar import load_cifar, read_cifar_batch
from onebyone.data.dataset import MAX_CLASSES, ArrayDataset, check_labels
from onebyone.data.idx import load_mnist_idx, read_idx
from onebyone.data.image_folder import load_image_folder
from onebyone.data.load import DATA_HELP, list_datasets, load

__all__ = [
    "DATA_HELP",
    "MAX_CLASSES",
    "ArrayDataset",
    "check_labels",
    "list_datasets",
    "load",
    "load_cifar",
    "load_image_folder",
    "load_mnist5k",
    "load_mnist_idx",
    "read_cifar_batch",
    "read_idx",
]
