"""The analyzer's hand-written meta kernels against torch's own CPU kernels: shapes and dtypes.

Each case builds the same arguments twice, as meta tensors for the hand-written kernel and as
real CPU tensors for torch's kernel, and compares every output's shape, dtype and memory format.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from onebyone.analysis._meta_kernels import META_SHORTCUTS

A = torch.ops.aten
CASES: list[tuple[object, object]] = []  # (operator overload, args(device) -> tuple)


def case(op, make):
    CASES.append((op, make))


def t(device, *shape, dtype=torch.float32, channels_last=False):
    x = torch.randn(shape, dtype=dtype, device=device) if device != "meta" else torch.empty(
        shape, dtype=dtype, device="meta"
    )
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


# convolutions: plain, strided, padded, dilated, grouped, depthwise, transposed, 1-d and 3-d
for (n, cin, size, cout, k, s, p, d, g, bias, cl) in [
    (1, 3, 8, 4, 3, 1, 0, 1, 1, True, False),
    (2, 4, 9, 6, 3, 2, 1, 1, 2, False, False),
    (1, 8, 10, 8, 3, 1, 2, 2, 8, True, False),
    (1, 3, 7, 5, 1, 1, 0, 1, 1, True, True),
    (3, 6, 11, 6, 5, 3, 2, 1, 3, True, True),
]:
    case(
        A.convolution.default,
        lambda dev, n=n, cin=cin, size=size, cout=cout, k=k, s=s, p=p, d=d, g=g, bias=bias, cl=cl: (
            t(dev, n, cin, size, size, channels_last=cl),
            t(dev, cout, cin // g, k, k),
            t(dev, cout) if bias else None,
            [s, s], [p, p], [d, d], False, [0, 0], g,
        ),
    )
for (cin, cout, k, s, p, op, g) in [(4, 6, 3, 2, 1, 1, 1), (4, 4, 2, 2, 0, 0, 2), (3, 5, 3, 1, 1, 0, 1)]:
    case(
        A.convolution.default,
        lambda dev, cin=cin, cout=cout, k=k, s=s, p=p, op=op, g=g: (
            t(dev, 1, cin, 5, 6), t(dev, cin, cout // g, k, k), t(dev, cout),
            [s, s], [p, p], [1, 1], True, [op, op], g,
        ),
    )
case(A.convolution.default, lambda dev: (t(dev, 2, 3, 20), t(dev, 4, 3, 5), None, [2], [1], [1], False, [0], 1))
case(
    A.convolution.default,
    lambda dev: (t(dev, 1, 2, 5, 6, 7), t(dev, 3, 2, 3, 3, 3), None, [1, 2, 1], [1, 0, 1], [1, 1, 1], False, [0, 0, 0], 1),
)

# pooling: kernel, stride, padding, dilation, ceil mode, with and without the batch
for k, s, p, d, ceil, batched in itertools.product((2, 3), ((), 2, 1), (0, 1), (1, 2), (False, True), (True, False)):
    if p > k // 2:
        continue
    shape = (2, 3, 9, 10) if batched else (3, 9, 10)
    case(A.max_pool2d_with_indices.default, lambda dev, shape=shape, k=k, s=s, p=p, d=d, ceil=ceil: (
        t(dev, *shape), [k, k], [s, s] if s else [], [p, p], [d, d], ceil))
for k, s, p, ceil in itertools.product((2, 3), (None, 2), (0, 1), (False, True)):
    if p > k // 2:
        continue
    case(A.avg_pool2d.default, lambda dev, k=k, s=s, p=p, ceil=ceil: (
        t(dev, 1, 4, 7, 8), [k, k], [s, s] if s else [], [p, p], ceil))

# elementwise
for op in (A.relu, A.gelu, A.tanh, A.hardswish, A.hardsigmoid, A.elu, A.neg, A.exp, A.sqrt, A.rsqrt):
    case(op.default, lambda dev: (t(dev, 2, 3, 4, 5, channels_last=True),))
case(A.hardtanh.default, lambda dev: (t(dev, 2, 5), -1.0, 1.0))
case(A.leaky_relu.default, lambda dev: (t(dev, 2, 5, dtype=torch.float16), 0.1))
case(A.clamp.default, lambda dev: (t(dev, 3, 4), 0.0, 6.0))
for op in (A.add.Tensor, A.sub.Tensor, A.mul.Tensor, A.div.Tensor, A.maximum.default, A.minimum.default):
    case(op, lambda dev: (t(dev, 2, 3, 4, 4), t(dev, 2, 3, 4, 4)))
    case(op, lambda dev: (t(dev, 2, 3, 4, 4), t(dev, 3, 1, 1)))
    case(op, lambda dev: (t(dev, 2, 3, 4, 4, dtype=torch.float16), t(dev, 2, 3, 4, 4)))
    case(op, lambda dev: (t(dev, 4, 1), t(dev, 1, 5)))
    case(op, lambda dev: (t(dev, 2, 3), torch.tensor(2.0, device=dev)))
for op in (A.add.Scalar, A.mul.Scalar):
    case(op, lambda dev: (t(dev, 2, 3, dtype=torch.bfloat16), 2))
for op in (A.relu_, A.hardtanh_, A.hardswish_, A.elu_, A.leaky_relu_):
    case(op.default, lambda dev: (t(dev, 2, 3, 4),))
case(A.clamp_.default, lambda dev: (t(dev, 2, 3), 0.0, 1.0))
for op in (A.add_.Tensor, A.mul_.Tensor, A.sub_.Tensor, A.div_.Tensor):
    case(op, lambda dev: (t(dev, 2, 3, 4), t(dev, 3, 1)))

# reductions, matrix products, concatenation, norms
for dim, keep in itertools.product(([-1, -2], [1], [0, 2, 3]), (False, True)):
    case(A.mean.dim, lambda dev, dim=dim, keep=keep: (t(dev, 2, 3, 4, 5), dim, keep))
case(A.addmm.default, lambda dev: (t(dev, 7), t(dev, 3, 5), t(dev, 5, 7)))
case(A.addmm.default, lambda dev: (t(dev, 4, 7), t(dev, 4, 5), t(dev, 5, 7)))
for dim in (0, 1, -1):
    case(A.cat.default, lambda dev, dim=dim: ([t(dev, 2, 3, 4), t(dev, 2, 3, 4)], dim))
case(A.cat.default, lambda dev: ([t(dev, 2, 3, 4), t(dev, 2, 5, 4), t(dev, 2, 1, 4)], 1))
case(A.cat.default, lambda dev: ([t(dev, 0), t(dev, 2, 3)], 0))  # legacy empty tensors are skipped
case(A.native_layer_norm.default, lambda dev: (t(dev, 2, 5, 8), [8], t(dev, 8), t(dev, 8), 1e-5))
case(A.native_layer_norm.default, lambda dev: (t(dev, 2, 5, 8), [5, 8], None, None, 1e-5))
for training in (False, True):
    case(A.native_batch_norm.default, lambda dev, training=training: (
        t(dev, 2, 3, 4, 4), t(dev, 3), t(dev, 3), t(dev, 3), t(dev, 3).abs(), training, 0.1, 1e-5))
case(A._native_batch_norm_legit_no_training.default, lambda dev: (
    t(dev, 2, 3, 4, 4, channels_last=True), t(dev, 3), t(dev, 3), t(dev, 3), t(dev, 3).abs(), 0.1, 1e-5))

# the backward's shortcuts (analysis/_train_cost.py, mode="train")
case(A.threshold_backward.default, lambda dev: (t(dev, 2, 3, 4, 5, channels_last=True),
     t(dev, 2, 3, 4, 5, channels_last=True), 0.0))
case(A.native_batch_norm_backward.default, lambda dev: (
    t(dev, 2, 3, 4, 4), t(dev, 2, 3, 4, 4), t(dev, 3), t(dev, 3), t(dev, 3).abs(),
    t(dev, 3), t(dev, 3).abs(), True, 1e-5, [True, True, True]))
case(A.mm.default, lambda dev: (t(dev, 3, 5), t(dev, 5, 7)))
for dim, keep in (([0], True), ([0, 2, 3], False), ([-1], False)):
    case(A.sum.dim_IntList, lambda dev, dim=dim, keep=keep: (t(dev, 2, 3, 4, 5), dim, keep))
for g in (1, 3):
    case(A.convolution_backward.default, lambda dev, g=g: (
        t(dev, 2, 6, 4, 4), t(dev, 2, 6, 6, 6), t(dev, 6, 6 // g, 3, 3), [6],
        [1, 1], [0, 0], [1, 1], False, [0, 0], g, [True, True, True]))
case(A.max_pool2d_with_indices_backward.default, lambda dev: (
    t(dev, 2, 3, 4, 4), t(dev, 2, 3, 8, 8), [2, 2], [2, 2], [0, 0], [1, 1], False,
    torch.zeros(2, 3, 4, 4, dtype=torch.int64, device=dev)))
case(A.avg_pool2d_backward.default, lambda dev: (
    t(dev, 2, 3, 4, 4), t(dev, 2, 3, 8, 8), [2, 2], [2, 2], [0, 0], False, True, None))


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _layout(x: torch.Tensor) -> str:
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return "channels_last"
    return "contiguous" if x.is_contiguous() else "strided"


@pytest.mark.parametrize("op, make", CASES, ids=[f"{op}-{i}" for i, (op, _) in enumerate(CASES)])
def test_meta_kernel_matches_torch(op, make):
    kernel = META_SHORTCUTS.get(op) or META_SHORTCUTS[op.overloadpacket]
    got = kernel(*make("meta"))
    assert got is not NotImplemented, "the kernel declined a valid case"
    expected = op(*make("cpu"))
    got, expected = _outputs(got), _outputs(expected)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.device.type == "meta"
        assert (tuple(g.shape), g.dtype) == (tuple(e.shape), e.dtype)
        if e.numel() > 1 and op is not A.mean.dim:
            assert _layout(g) == _layout(e)


def test_every_kernel_has_a_case():
    tested = set()
    for op, _ in CASES:
        tested.update({op, op.overloadpacket})
    assert set(META_SHORTCUTS) <= tested


def test_kernels_decline_what_torch_rejects():
    # a channel mismatch and a kernel larger than the input: torch raises its own error
    x = torch.empty(1, 3, 8, 8, device="meta")
    conv = META_SHORTCUTS[A.convolution.default]
    assert conv(x, torch.empty(4, 5, 3, 3, device="meta"), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1) is NotImplemented
    assert conv(x, torch.empty(4, 3, 9, 9, device="meta"), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1) is NotImplemented
    pool = META_SHORTCUTS[A.max_pool2d_with_indices.default]
    assert pool(x, [3, 3], [1, 1], [2, 2], [1, 1], False) is NotImplemented  # padding > k // 2
