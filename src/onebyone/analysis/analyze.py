"""``onebyone.analyze``: per-layer parameters, MACs and FLOPs of any PyTorch model.

The model is copied onto the meta device (no real memory, no real arithmetic) with its
parameters, buffers and tensor attributes replaced by meta tensors of the same shape;
tied tensors stay tied and shared modules stay shared. The copy runs under a
``TorchDispatchMode`` that counts every aten operator (see ``_counting``) and module hooks
that attribute each operator to the innermost module running. The user's model is never
moved, mutated or hooked.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import torch
from torch import nn

from onebyone._checks import check_int
from onebyone._internal import InternalError
from onebyone.errors import OneByOneError

from ._inputs import INPUT_RANK, analysis_copy, check_rank, default_dtype, make_inputs, rng_kept
from ._measure import measure_device, measure_into
from ._recorder import Call, Recorder, shape_of
from ._train_cost import check_optimizer, record_train  # train-cost
from .profiles import DeviceProfile, resolve_profile
from .report import LayerStats, Report
from .roofline import apply_estimate, estimate

__all__ = ["INPUT_RANK", "analyze"]

def analyze(
    model: nn.Module,
    input_size: Any = None,
    *,
    device: str | torch.device = "meta",
    dtype: torch.dtype | None = None,
    train: bool = False,
    device_profile: DeviceProfile | str | None = None,
    measure: bool = False,
    repeats: int = 10,
    warmup: int = 3,
    mode: str = "forward",
    optimizer: str = "adamw",
) -> Report:
    """Count parameters, MACs and FLOPs per module call, without a real forward by default.

    Args:
        model: any ``nn.Module``. It is not moved, changed or hooked: a copy is analyzed,
            without the user's own forward hooks (torch's own, such as ``weight_norm``'s,
            run), and the global random stream is the same afterwards.
        input_size: one shape with the batch dimension, e.g. ``(1, 3, 224, 224)``; a list of
            shapes for a model with several inputs; or example tensors (their shapes and
            dtypes are used, so integer token ids work).
        device: ``"meta"`` (default) counts without memory or arithmetic; ``"cpu"`` or
            ``"cuda"`` run a real forward on a copy and give the same counts.
        dtype: floating dtype of the copy's parameters and of inputs given as shapes;
            it sets ``param_bytes``, ``activation_bytes`` and the traffic. None (default):
            the dtype of the model's first floating parameter (``.half()`` models count
            in float16), float32 for a model without one.
        train: run the copy in training mode (default: eval mode).
        device_profile: the device to estimate times for: a
            :class:`~onebyone.analysis.profiles.DeviceProfile`, a preset name (``"t4"``,
            ``"h200"``...), a profile file, or None for this machine's calibrated profile
            (the named fallback until ``onebyone calibrate`` has run).
        measure: also run a copy of the model for real and put the measured time (median of
            ``repeats`` runs after ``warmup`` runs) on every row and on the report. It runs on
            ``device`` when that is a real device, else where the model's weights are.
        repeats: timed runs per measurement (``measure=True``).
        warmup: untimed runs before measuring.
        mode: ``"forward"`` (default) counts the forward; ``"train"`` also runs the backward
            of the sum of the outputs (in training mode) and fills ``backward_macs``,
            ``backward_flops`` and ``saved_bytes`` on every row and ``Report.train_cost``
            (gradients, optimizer state, the peak memory of a step; see ``_train_cost``).
        optimizer: the optimizer of ``mode="train"``: ``"sgd"``, ``"sgd-momentum"``,
            ``"adam"`` or ``"adamw"``.

    Returns:
        A :class:`Report` with one :class:`LayerStats` per module call, the totals, and the
        estimated (and measured) times.

    Raises:
        ValueError: a malformed ``input_size`` (wrong rank, a dimension < 1, more bytes than a
            tensor can hold) or ``device``; an unknown or invalid ``device_profile``;
            ``measure=True`` on a model whose weights are on the meta device.
        TypeError: ``model`` is not an ``nn.Module`` or ``dtype`` is not a floating dtype.
        OneByOneError: the forward failed; the message names the module and the shapes it
            received, and the original exception is chained.
        InternalError: onebyone's own counting code (a rule, a hook) failed: a bug to report,
            raised with the original exception chained rather than as a user error.

    Example:
        >>> from torch import nn
        >>> import onebyone
        >>> m = nn.Sequential(nn.Conv2d(3, 512, 3, padding=1), nn.ReLU())
        >>> r = onebyone.analyze(m, (1, 3, 256, 256))
        >>> r.total_params, f"{r.total_macs:,}"
        (14336, '905,969,664')
        >>> r.rows[1].formula
        '3*3*3*512 + 512 = 14,336 params; 3*3*3*512 * 256*256 = 905,969,664 MACs'
    """
    if isinstance(model, (str, os.PathLike)) and str(model).lower().endswith(".onnx"):
        from onebyone.onnx import analyze_onnx  # an .onnx file (needs the onnx extra)

        return estimate(analyze_onnx(model, input_size), device_profile)
    profile = resolve_profile(device_profile)
    if mode not in ("forward", "train"):  # train-cost: mode="train"
        raise ValueError(f"mode must be 'forward' or 'train', got {mode!r}")
    if mode == "train":
        optimizer = check_optimizer(optimizer)
        train = True
    if measure:
        repeats = check_int("repeats", repeats, minimum=1)
        warmup = check_int("warmup", warmup, minimum=0)
    try:
        report, _ = _analyze(
            model, input_size, device=device, dtype=dtype, train=train,
            optimizer=optimizer if mode == "train" else None,
        )  # fmt: skip
    except OneByOneError as e:
        raise _with_memory_needed(e, model, input_size, dtype, train) from e.__cause__
    apply_estimate(report, profile)
    if measure:
        where = measure_device(model, torch.device(device))
        with rng_kept(where):
            measure_into(
                report,
                model,
                input_size,
                device=where,
                dtype=getattr(torch, report.dtype),
                train=train,
                repeats=repeats,
                warmup=warmup,
            )
    return report


# ---------------------------------------------------------------------------- internals


def _analyze(
    model: nn.Module,
    input_size: Any,
    *,
    device: str | torch.device = "meta",
    dtype: torch.dtype | None = None,
    train: bool = False,
    optimizer: str | None = None,
) -> tuple[Report, list[Call]]:
    """Run the analysis; return the report and the recorded calls (with their modules).

    ``optimizer`` (a name) counts a training step too (``mode="train"``).
    """
    # Copying and counting allocate some ten thousand short-lived Python objects. With the
    # collector on, they trigger a full collection over everything `import torch` created,
    # which was most of the first call's time (0.17 s -> 0.06 s on resnet50). Any cycles
    # left behind are collected later, once the collector is back on.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _analyze_impl(
            model, input_size, device=device, dtype=dtype, train=train, optimizer=optimizer
        )
    finally:
        if was_enabled:
            gc.enable()


def _check_arguments(model: Any, device: Any, dtype: Any) -> tuple[torch.device, torch.dtype]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if dtype is None:
        dtype = default_dtype(model)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"dtype must be a floating torch.dtype such as torch.float32, got {dtype!r}"
        )
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be 'meta', 'cpu' or 'cuda[:N]', got {device!r}") from e
    if device.type not in ("meta", "cpu"):
        try:
            torch.empty(0, device=device)
        except (AssertionError, RuntimeError) as e:  # torch asserts when built without CUDA
            raise ValueError(
                f"device {str(device)!r} is not available here ({e}); use 'meta' (the default, "
                "no real forward) or 'cpu'"
            ) from e
    return device, dtype


def _analyze_impl(
    model: nn.Module, input_size: Any, *, device: Any, dtype: Any, train: bool, optimizer: Any
) -> tuple[Report, list[Call]]:
    device, dtype = _check_arguments(model, device, dtype)
    with rng_kept(device):  # random inputs must not move the user's random stream
        if optimizer is not None:
            return _record_train(model, input_size, device=device, dtype=dtype, optimizer=optimizer)
        return _record(model, input_size, device=device, dtype=dtype, train=train)


def _record_train(
    model: nn.Module,
    input_size: Any,
    *,
    device: torch.device,
    dtype: torch.dtype,
    optimizer: str,
    prepare: Any = None,
) -> tuple[Report, list[Call]]:
    """``_record`` for ``mode="train"``: the forward with gradients on, then the backward.

    ``prepare(copy)``, if given, changes the analysis copy first (a what-if, see ``memory``).
    """
    inputs = make_inputs(input_size, device, dtype)
    check_rank(model, inputs)
    work = analysis_copy(model, device, dtype)
    work.train(True)
    if prepare is not None:
        prepare(work)

    def run_forward(recorder: Recorder, tagger: Any) -> Any:
        fastpath = torch.backends.mha.get_fastpath_enabled()
        try:
            torch.backends.mha.set_fastpath_enabled(False)
            with recorder, tagger, recorder.counter:
                return work(*inputs)
        except InternalError:
            raise
        except Exception as e:
            raise _forward_error(e, recorder.stack, device) from e
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)

    recorder, cost, outside = record_train(work, inputs, optimizer, run_forward)
    report = _totals(model, work, inputs, device, dtype, [c.row for c in recorder.calls])
    report.uncounted_ops = dict(sorted(recorder.counter.uncounted.items()))
    report.backward_macs = sum(c.row.backward_macs for c in recorder.calls) + outside.macs
    report.backward_flops = sum(c.row.backward_flops for c in recorder.calls) + outside.flops
    report.train_cost = cost
    return report, recorder.calls


def _record(
    model: nn.Module, input_size: Any, *, device: torch.device, dtype: torch.dtype, train: bool
) -> tuple[Report, list[Call]]:
    inputs = make_inputs(input_size, device, dtype)
    check_rank(model, inputs)

    work = analysis_copy(model, device, dtype)
    work.train(bool(train))
    recorder = Recorder(work)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        # Attention's CPU/CUDA inference fast path is one fused kernel with no counting rule
        # (and the meta device never takes it); turn it off so that every device runs the
        # same decomposed operators and gives the same counts.
        torch.backends.mha.set_fastpath_enabled(False)
        with recorder, torch.no_grad(), recorder.counter:
            work(*inputs)
    except InternalError:
        raise  # our bug: the whole traceback, not a one-line user error
    except Exception as e:
        raise _forward_error(e, recorder.stack, device) from e
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)

    report = _totals(model, work, inputs, device, dtype, [c.row for c in recorder.calls])
    report.uncounted_ops = dict(sorted(recorder.counter.uncounted.items()))
    return report, recorder.calls


def _totals(
    model: nn.Module,
    work: nn.Module,
    inputs: list[torch.Tensor],
    device: torch.device,
    dtype: torch.dtype,
    rows: list[LayerStats],
) -> Report:
    params = list(work.parameters())  # deduplicated: tied tensors once
    buffers = list(work.buffers())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    macs = sum(r.macs for r in rows)
    extra = sum(r.extra_flops for r in rows)
    return Report(
        model=type(model).__name__,
        input_shapes=[shape_of(t) for t in inputs],
        dtype=str(dtype).replace("torch.", ""),
        device=str(device),
        rows=rows,
        total_params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        buffers=sum(b.numel() for b in buffers),
        total_macs=macs,
        total_flops=2 * macs + extra,
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        buffer_bytes=sum(b.numel() * b.element_size() for b in buffers),
        activation_bytes=sum(r.activation_bytes for r in rows if r.is_leaf),
        input_bytes=sum(t.numel() * t.element_size() for t in inputs),
        bytes_read=sum(r.bytes_read for r in rows),
        bytes_written=sum(r.bytes_written for r in rows),
    )


def _with_memory_needed(
    error: OneByOneError, model: nn.Module, input_size: Any, dtype: Any, train: bool
) -> OneByOneError:
    """``error``, with the memory the forward needs (counted on meta) when it ran out of it."""
    cause = error.__cause__
    text = str(cause).lower()
    if not isinstance(cause, (RuntimeError, MemoryError)) or "memory" not in text:
        return error
    try:
        need, _ = _analyze(model, input_size, device="meta", dtype=dtype, train=train)
    except Exception:  # the meta count failed too: the original message is all we have
        return error
    from ._units import human_bytes

    total = need.activation_bytes + need.param_bytes + need.buffer_bytes + need.input_bytes
    return OneByOneError(
        f"{error} (out of memory: a forward that keeps every layer's output needs "
        f"{human_bytes(total)}: {human_bytes(need.activation_bytes)} of activations, "
        f"{human_bytes(need.param_bytes + need.buffer_bytes)} of weights and buffers; use a "
        "smaller input or device='meta', which counts without memory)"
    )


def _forward_error(e: Exception, stack: list[Call], device: torch.device) -> OneByOneError:
    detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if stack:
        row = stack[-1].row
        where = f"module {row.name!r} ({row.type})" if row.name else f"the model ({row.type})"
        shapes = ", ".join(str(s) for s in row.input_shapes) or "no tensors"
        msg = f"forward failed in {where} on input shapes {shapes}: {type(e).__name__}: {detail}"
    else:
        msg = f"forward failed before any module ran: {type(e).__name__}: {detail}"
    if device.type == "meta" and ("meta" in str(e) or "item()" in str(e)):
        msg += " (data-dependent code cannot run on the meta device; try device='cpu')"
    return OneByOneError(msg)
