"""onebyone.functional: every formulation of the 1x1 projection against F.conv2d."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from onebyone import functional as OF
from onebyone.functional import channel_project


def _formulations():
    """(name, function(x, w2, bias)) for every private formulation the dispatcher can pick."""
    return [
        ("nchw", OF._project_nchw, torch.contiguous_format),
        ("nhwc", OF._project_nhwc, torch.channels_last),
    ]


@pytest.mark.parametrize(("name", "fn", "fmt"), _formulations())
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_each_formulation_equals_conv2d_with_gradients(name, fn, fmt, n, bias, dtype):
    x = torch.randn(n, 6, 5, 7, dtype=dtype).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(4, 6, dtype=dtype, requires_grad=True)
    b = torch.randn(4, dtype=dtype, requires_grad=True) if bias else None
    out = fn(x, w, b)
    xr, wr = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    br = b.detach().clone().requires_grad_() if bias else None
    ref = F.conv2d(xr, wr[:, :, None, None], br)
    tol = {"rtol": 2e-2, "atol": 5e-2} if dtype == torch.bfloat16 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(out, ref, **tol)
    assert out.is_contiguous(memory_format=fmt)
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, xr.grad, **tol)
    torch.testing.assert_close(w.grad, wr.grad, **tol)
    if bias:
        torch.testing.assert_close(b.grad, br.grad, **tol)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3),
    cin=st.integers(1, 8),
    cout=st.integers(1, 8),
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    stride=st.integers(1, 3),
    layout=st.sampled_from(["nchw", "nhwc", "strided"]),
    weight_2d=st.booleans(),
)
def test_channel_project_equals_conv2d(n, cin, cout, h, w, stride, layout, weight_2d):
    x = torch.randn(n, cin, h, w)
    if layout == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        x = torch.randn(n, cin, h, 2 * w)[..., ::2]
    weight = torch.randn(cout, cin, 1, 1)
    bias = torch.randn(cout)
    out = channel_project(x, weight.flatten(1) if weight_2d else weight, bias, stride)
    torch.testing.assert_close(out, F.conv2d(x, weight, bias, stride=stride), rtol=1e-5, atol=1e-5)


def test_channel_project_in_no_grad_and_inference_mode():
    x = torch.randn(2, 8, 4, 4)
    w = torch.nn.Parameter(torch.randn(3, 8, 1, 1))
    ref = F.conv2d(x, w)
    with torch.no_grad():
        torch.testing.assert_close(channel_project(x, w), ref.detach())
    with torch.inference_mode():
        torch.testing.assert_close(channel_project(x, w), ref.detach())


@pytest.mark.parametrize(
    ("weight", "bias", "stride", "match"),
    [
        (torch.randn(4, 6, 3, 3), None, 1, r"weight must have shape .* got \(4, 6, 3, 3\)"),
        (torch.randn(4), None, 1, r"weight must have shape .* got \(4,\)"),
        (torch.randn(4, 6), torch.randn(3), 1, r"bias must have shape \(4,\), got \(3,\)"),
        (torch.randn(4, 6), None, 0, "stride must be an integer >= 1, got 0"),
        (
            torch.randn(4, 5),
            None,
            1,
            r"channel_project: expected 5 input channels \(dim 1\), got 6",
        ),
    ],
)
def test_channel_project_bad_input(weight, bias, stride, match):
    with pytest.raises(ValueError, match=match):
        channel_project(torch.randn(2, 6, 3, 3), weight, bias, stride)
