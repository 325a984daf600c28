"""Reader for an image folder: one subfolder per class, as in ``ImageFolder``.

``root/<class>/<image>`` (png, jpg, bmp, gif, webp). If ``root`` has ``train/`` and ``test/``
(or ``val/``) subfolders, those are the splits; otherwise a deterministic, class-stratified
20% of each class is held out as the test split. Needs Pillow (``pip install onebyone[images]``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from onebyone.data.dataset import ArrayDataset

__all__ = ["IMAGE_SUFFIXES", "load_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_HOLDOUT = 0.2


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_root(root: Path, split: str) -> Path | None:
    names = {"train": ("train",), "test": ("test", "val")}[split]
    for n in names:
        if (root / n).is_dir():
            return root / n
    return None


def load_image_folder(
    root: str | os.PathLike, split: str = "train", *, size: tuple[int, int] | None = None
) -> ArrayDataset:
    """Load images from ``root/<class>/*.png`` into an :class:`ArrayDataset`.

    Args:
        root: the folder.
        split: ``"train"`` or ``"test"``.
        size: ``(height, width)`` to resize every image to; by default all images must
            already share one size.

    Returns:
        One-channel images if every file is grayscale, otherwise RGB.

    Raises:
        FileNotFoundError: no such folder, or no class subfolders with images.
        ValueError: an image cannot be decoded, sizes differ and ``size`` is not given, or
            the held-out test split is empty (fewer than 5 images per class).
        ImportError: Pillow is not installed.

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for c in ("cat", "dog"):
        ...     (root / c).mkdir()
        ...     for i in range(5):
        ...         Image.new("L", (8, 8), 40 * i).save(root / c / f"{i}.png")
        >>> ds = load_image_folder(root, "train")
        >>> len(ds), ds.classes, ds.input_size
        (8, ['cat', 'dog'], (1, 8, 8))
    """
    from onebyone._checks import check_choice

    check_choice("split", split, ("train", "test"))
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading an image folder needs Pillow: pip install 'onebyone[images]'"
        ) from e
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    split_dir = _split_root(root, split)
    holdout = split_dir is None
    base = root if holdout else split_dir
    class_dirs = _class_dirs(base)
    files: list[tuple[Path, int]] = []
    for label, d in enumerate(class_dirs):
        members = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if holdout:
            # Deterministic per-class holdout: every 5th file (by sorted name) is test.
            step = round(1 / _HOLDOUT)
            members = [
                p for i, p in enumerate(members) if (i % step == step - 1) == (split == "test")
            ]
        files.extend((p, label) for p in members)
    if holdout and class_dirs and not files and split == "test":
        step = round(1 / _HOLDOUT)
        raise ValueError(
            f"{str(base)!r}: the test split holds no images: without train/ and test/ "
            f"subfolders every {step}th image of each class (by name) is held out, so a class "
            f"needs at least {step} images"
        )
    if not class_dirs or not files:
        raise FileNotFoundError(
            f"{str(base)!r}: expected one subfolder per class holding images "
            f"({', '.join(IMAGE_SUFFIXES)})"
        )
    pictures = []
    for path, _ in files:
        try:
            with Image.open(path) as im:
                im.load()
                pictures.append(im.copy())
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(
                f"cannot read image {str(path)!r}: expected a valid image file ({e})"
            ) from None
    gray = all(p.mode in ("1", "L", "I;16", "I") for p in pictures)
    mode = "L" if gray else "RGB"
    arrays = []
    for (path, _), pic in zip(files, pictures, strict=False):
        pic = pic.convert(mode)
        if size is not None:
            pic = pic.resize((size[1], size[0]), Image.BILINEAR)
        arr = np.asarray(pic, dtype=np.uint8)
        if arrays and arr.shape != arrays[0].shape:
            raise ValueError(
                f"{str(path)!r} is {arr.shape[1]}x{arr.shape[0]} but {str(files[0][0])!r} is "
                f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; pass size=(H, W) to resize"
            )
        arrays.append(arr)
    images = np.stack(arrays)
    if not gray:
        images = images.transpose(0, 3, 1, 2)
    labels = np.array([label for _, label in files], dtype=np.int64)
    return ArrayDataset(
        images, labels, classes=[d.name for d in class_dirs], name=f"{root.name}:{split}"
    )
