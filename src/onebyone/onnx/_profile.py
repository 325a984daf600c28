"""``profile``: the latency of an ``.onnx`` file in onnxruntime's CPU provider (medians)."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from onebyone.errors import OneByOneError

from ._analyze import _check_sizes, _input_shapes, load_onnx

__all__ = ["ProfileResult", "latency_before_after", "latency_or_note", "profile"]


@dataclass
class ProfileResult:
    """Latency of one ``.onnx`` file in onnxruntime.

    Attributes:
        path: the file.
        input_shapes: the shapes it was run on.
        median_ms: the median wall-clock time of one run, in milliseconds.
        samples_ms: every timed run, in milliseconds.
        threads: onnxruntime's intra-op threads (0: its default).
        provider: the execution provider.
        onnxruntime: the onnxruntime version.
        spread: the interquartile range of the samples over their median; above
            ``onebyone._timing.MAX_SPREAD`` the median is unreliable (the machine was busy).

    Example:
        >>> r = ProfileResult("m.onnx", [(1, 3, 8, 8)], 1.5, [1.4, 1.5, 1.6], 1)
        >>> str(r)
        'm.onnx at 1x3x8x8: 1.50 ms median of 3 runs (onnxruntime CPUExecutionProvider, 1 thread)'
    """

    path: str
    input_shapes: list[tuple[int, ...]]
    median_ms: float
    samples_ms: list[float] = field(default_factory=list)
    threads: int = 0
    provider: str = "CPUExecutionProvider"
    onnxruntime: str = ""

    @property
    def spread(self) -> float:
        """The interquartile range of the samples over their median."""
        from onebyone._timing import spread

        return spread(self.samples_ms)

    @property
    def reliable(self) -> bool:
        """Whether the spread is at most ``onebyone._timing.MAX_SPREAD``."""
        from onebyone._timing import MAX_SPREAD

        return self.spread <= MAX_SPREAD

    def __str__(self) -> str:
        shapes = ", ".join("x".join(map(str, s)) for s in self.input_shapes)
        threads = "default threads" if not self.threads else f"{self.threads} thread" + ("s" if self.threads > 1 else "")
        noise = "" if self.reliable else f"; unreliable: the runs varied by {self.spread:.0%} of the median"
        return (
            f"{self.path} at {shapes}: {self.median_ms:.2f} ms median of {len(self.samples_ms)} runs "
            f"(onnxruntime {self.provider}, {threads}){noise}"
        )


def profile(
    path: str | os.PathLike,
    input_size: Any = None,
    *,
    repeats: int = 20,
    warmup: int = 3,
    threads: int = 0,
) -> ProfileResult:
    """Time an ``.onnx`` file in onnxruntime (CPU) on random inputs; report the median.

    Args:
        path: the ``.onnx`` file.
        input_size: the input shape with the batch (a list for several inputs); needed when
            an input has a symbolic dimension.
        repeats: timed runs (the median is reported).
        warmup: untimed runs first.
        threads: onnxruntime's intra-op threads; 0 for its default.

    Returns:
        A :class:`ProfileResult`.

    Raises:
        ValueError: a bad argument or file, or a model onnxruntime cannot load (an opset it
            does not support, say).
        OneByOneError: onnxruntime failed to run the model.
        MissingExtraError: the ``onnx`` extra is not installed.

    Example:
        >>> import tempfile, pathlib
        >>> from torch import nn
        >>> import onebyone
        >>> from onebyone.onnx import profile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.onnx"
        >>> _ = onebyone.export_onnx(nn.Conv2d(3, 8, 1), (1, 3, 8, 8), path)
        >>> r = profile(path, (2, 3, 8, 8), repeats=3, threads=1)
        >>> r.input_shapes, len(r.samples_ms), r.median_ms > 0
        ([(2, 3, 8, 8)], 3, True)
    """
    from onebyone._checks import check_int

    repeats = check_int("repeats", repeats, minimum=1)
    warmup = check_int("warmup", warmup, minimum=0)
    threads = check_int("threads", threads, minimum=0)
    proto = load_onnx(path, what="profiling an .onnx file")
    if input_size is not None:
        _check_sizes(input_size)
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in initializers]
    shapes = _input_shapes(inputs, input_size, str(path))
    del proto

    import numpy as np
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"onnxruntime {ort.__version__} cannot load {str(path)!r}: {detail}") from e
    rng = np.random.default_rng(0)
    feeds = {}
    for value in inputs:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        shape = shapes[value.name]
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[value.name] = np.zeros(shape, dtype=dtype)
    try:
        for _ in range(warmup):
            session.run(None, feeds)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, feeds)
            samples.append(1000.0 * (time.perf_counter() - start))
    except Exception as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OneByOneError(f"onnxruntime failed to run {str(path)!r} on {list(shapes.values())}: {detail}") from e
    return ProfileResult(
        path=str(path),
        input_shapes=list(shapes.values()),
        median_ms=statistics.median(samples),
        samples_ms=samples,
        threads=threads,
        onnxruntime=ort.__version__,
    )


def latency_before_after(
    before: Any,
    after: Any,
    size: tuple[int, ...],
    *,
    batches: tuple[int, ...] = (1, 8),
    repeats: int = 20,
    warmup: int = 3,
    threads: int = 0,
) -> dict[str, dict[str, float | None]]:
    """Export both models (static shapes) to temporary files and time each in onnxruntime.

    Each model is exported once per batch with every axis fixed (``(batch, *size)``), verified
    by :func:`~onebyone.onnx.export_onnx`, then timed by :func:`profile`; the files are deleted.
    A figure is None, as in the PyTorch latency cells, where the noise made it meaningless: its
    runs varied by more than ``onebyone._timing.MAX_SPREAD``, or (both batches of a model)
    batch 8 ran faster than batch 1.

    Args:
        before: the model before the surgery.
        after: the model after it.
        size: the input shape without the batch, e.g. ``(3, 32, 32)``.
        batches: the batch sizes to time.
        repeats: timed runs per file (the median is reported).
        warmup: untimed runs first.
        threads: onnxruntime's intra-op threads; 0 for its default.

    Returns:
        ``{"before": {"ort_ms_b1": ms, "ort_ms_b8": ms}, "after": {...}}`` (None: unreliable).

    Raises:
        MissingExtraError: the ``onnx`` extra is not installed.
        OneByOneError: a model failed to export or to run in onnxruntime.

    Example:
        >>> from torch import nn
        >>> t = latency_before_after(nn.Conv2d(3, 8, 1), nn.Conv2d(3, 4, 1), (3, 8, 8), repeats=2, threads=1)
        >>> sorted(t["after"]), all(ms is None or ms > 0 for ms in t["before"].values())  # None: noise won
        (['ort_ms_b1', 'ort_ms_b8'], True)
    """
    import tempfile
    from pathlib import Path

    from onebyone._timing import Measurement, reliable_ms

    from ._deps import require_onnx
    from ._export import export_onnx

    require_onnx("onnxruntime latency")
    times: dict[str, dict[int, Measurement]] = {"before": {}, "after": {}}
    with tempfile.TemporaryDirectory(prefix="onebyone-ort-") as folder:
        for batch in batches:
            shape = (batch, *size)
            for key, net in (("before", before), ("after", after)):
                path = Path(folder) / f"{key}_b{batch}.onnx"
                export_onnx(net, shape, path, dynamic_batch=False)
                result = profile(path, shape, repeats=repeats, warmup=warmup, threads=threads)
                times[key][batch] = Measurement(tuple(ms / 1000.0 for ms in result.samples_ms))
                path.unlink()
    return {key: {f"ort_ms_b{batch}": ms for batch, ms in reliable_ms(by_batch).items()}
            for key, by_batch in times.items()}


def latency_or_note(before: Any, after: Any, size: tuple[int, ...], **kwargs: Any) -> tuple[dict | None, str | None]:
    """:func:`latency_before_after`, or ``None`` and a one-line note saying why it was skipped.

    A missing ``onnx`` extra or a model that does not export is a note, never an error: the
    onnxruntime figures are an extra on reports whose own work is done.

    Example:
        >>> from torch import nn
        >>> times, note = latency_or_note(nn.Conv2d(3, 4, 1), nn.Conv2d(3, 2, 1), (3, 4, 4), repeats=1, threads=1)
        >>> note is None, sorted(times)
        (True, ['after', 'before'])
    """
    from ._deps import MissingExtraError

    try:
        return latency_before_after(before, after, size, **kwargs), None
    except MissingExtraError as e:
        return None, f"note: no onnxruntime latency: {e}"
    except (OneByOneError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return None, f"note: no onnxruntime latency: exporting or running the model failed: {first}"
