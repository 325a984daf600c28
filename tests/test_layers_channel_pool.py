"""CrossChannelPool against a plain loop over groups, the seed's 50 -> 5 example, gradcheck."""

import copy
import functools
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebyone import CrossChannelPool
from onebyone.functional import cross_channel_pool

MODES = ["max", "avg", "sum", "lp", "wta"]


@pytest.fixture
def fresh_dynamo():
    """Each compile test starts from an empty cache (no recompile limit carried across tests)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def loop_reference(x, k, mode="max", grouping="contiguous", stride=None, dim=1, p=2.0):
    """Independent reference: list the channel indices of every group, reduce slice by slice."""
    s = k if stride is None else stride
    xm = x.movedim(dim, 0)
    c = xm.shape[0]
    if grouping == "contiguous":
        groups = [list(range(j * s, j * s + k)) for j in range((c - k) // s + 1)]
    else:
        n = c // k
        groups = [[j + i * n for i in range(k)] for j in range(n)]
    if mode == "wta":
        out = torch.zeros_like(xm)
        for idx in groups:
            m = functools.reduce(torch.maximum, [xm[i] for i in idx])
            for i in idx:
                out[i] = torch.where(xm[i] == m, xm[i], torch.zeros_like(xm[i]))
        return out.movedim(0, dim)
    outs = []
    for idx in groups:
        slices = [xm[i] for i in idx]
        if mode == "max":
            outs.append(functools.reduce(torch.maximum, slices))
        elif mode == "sum":
            outs.append(sum(slices))
        elif mode == "avg":
            outs.append(sum(slices) / k)
        else:
            outs.append(sum(t.abs() ** p for t in slices) ** (1.0 / p))
    return torch.stack(outs).movedim(0, dim)


def test_exported_from_package_root():
    from onebyone.layers import CrossChannelPool as Same

    assert CrossChannelPool is Same


def test_seed_example_50_maps_to_5():
    # Channel c holds the value c everywhere, so group j's max is 10*j + 9 at every point.
    x = torch.arange(50.0).view(1, 50, 1, 1).expand(2, 50, 6, 6).contiguous()
    out = CrossChannelPool(10)(x)
    assert out.shape == (2, 5, 6, 6)
    assert torch.equal(out[0, :, 3, 4], torch.tensor([9.0, 19.0, 29.0, 39.0, 49.0]))
    # Random input: each output point is the max of the same point of its 10 maps.
    x = torch.randn(2, 50, 6, 6)
    out = CrossChannelPool(10)(x)
    for j in range(5):
        torch.testing.assert_close(out[:, j], x[:, 10 * j : 10 * j + 10].max(dim=1).values)


CASES = [
    (mode, grouping, k, stride, c)
    for mode in MODES
    for grouping, k, stride, c in [
        ("contiguous", 3, None, 12),
        ("interleaved", 3, None, 12),
        ("contiguous", 1, None, 5),
        ("contiguous", 4, 2, 10),
        ("contiguous", 3, 1, 7),
    ]
    if not (mode == "wta" and stride is not None)
]


@pytest.mark.parametrize(("mode", "grouping", "k", "stride", "c"), CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_equals_loop_reference_with_gradients(mode, grouping, k, stride, c, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, c, 5, 3).contiguous(memory_format=fmt).requires_grad_()
    xr = x.detach().clone().requires_grad_()
    pool = CrossChannelPool(k, mode=mode, grouping=grouping, stride=stride, p=3.0)
    out = pool(x)
    ref = loop_reference(xr, k, mode, grouping, stride, 1, 3.0)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_rank_any_dim_matches_reference(data):
    rank = data.draw(st.integers(1, 5), label="rank")
    dim = data.draw(st.integers(-rank, rank - 1), label="dim")
    mode = data.draw(st.sampled_from(MODES), label="mode")
    grouping = data.draw(st.sampled_from(["contiguous", "interleaved"]), label="grouping")
    k = data.draw(st.integers(1, 4), label="k")
    overlap = grouping == "contiguous" and mode != "wta" and data.draw(st.booleans())
    stride = data.draw(st.integers(1, k), label="stride") if overlap else None
    groups = data.draw(st.integers(1, 4), label="groups")
    c = k + (groups - 1) * stride if overlap else k * groups
    shape = [data.draw(st.integers(1, 3)) for _ in range(rank)]
    shape[dim] = c
    x = torch.randn(shape, dtype=torch.float64)
    kwargs = dict(mode=mode, grouping=grouping, stride=stride, dim=dim, p=2.5)
    out = cross_channel_pool(x, k, **kwargs)
    torch.testing.assert_close(out, loop_reference(x, k, mode, grouping, stride, dim, 2.5))
    torch.testing.assert_close(CrossChannelPool(k, **kwargs)(x), out)


@pytest.mark.parametrize(("mode", "grouping", "k", "stride", "c"), CASES)
def test_gradcheck_float64(mode, grouping, k, stride, c):
    x = torch.randn(2, c, 3, dtype=torch.float64, requires_grad=True)
    pool = CrossChannelPool(k, mode=mode, grouping=grouping, stride=stride, p=3.0)
    assert torch.autograd.gradcheck(pool, (x,))


def test_max_routes_gradient_like_amax_on_ties():
    x = torch.tensor([[1.0, 3.0, 3.0, 0.0, 2.0, -1.0]], requires_grad=True)
    CrossChannelPool(3, dim=-1)(x).sum().backward()
    assert torch.equal(x.grad, torch.tensor([[0.0, 0.5, 0.5, 0.0, 1.0, 0.0]]))


def test_wta_keeps_ties_and_zeroes_the_rest():
    x = torch.tensor([[1.0, 3.0, 3.0, 0.0, 2.0, -1.0]])
    out = CrossChannelPool(3, mode="wta", dim=-1)(x)
    assert torch.equal(out, torch.tensor([[0.0, 3.0, 3.0, 0.0, 2.0, 0.0]]))


def test_lp_with_p_1_is_sum_of_abs_and_inf_is_max_abs():
    x = torch.tensor([[1.0, -2.0, 3.0, -4.0]])
    assert torch.equal(cross_channel_pool(x, 2, mode="lp", p=1, dim=-1), torch.tensor([[3.0, 7.0]]))
    assert torch.equal(
        cross_channel_pool(x, 2, mode="lp", p=float("inf"), dim=-1), torch.tensor([[2.0, 4.0]])
    )


def test_nan_and_inf_propagate_within_their_group_only():
    x = torch.tensor([[1.0, float("nan"), 2.0, 3.0, float("inf"), 0.0]])
    assert torch.equal(
        cross_channel_pool(x, 2, dim=-1).isnan(), torch.tensor([[True, False, False]])
    )
    out = cross_channel_pool(x, 2, dim=-1)
    assert out[0, 1] == 3.0 and out[0, 2] == float("inf")
    avg = cross_channel_pool(x, 2, mode="avg", dim=-1)
    assert avg[0, 0].isnan() and avg[0, 2] == float("inf")
    wta = cross_channel_pool(x, 2, mode="wta", dim=-1)
    assert wta[0, 1].isnan() and wta[0, 0] == 0 and wta[0, 4] == float("inf")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision(channels_last, dtype):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 16, 4, 4).to(dtype).contiguous(memory_format=fmt)
    for grouping in ("contiguous", "interleaved"):
        out = cross_channel_pool(x, 4, grouping=grouping)
        assert out.dtype == dtype
        # max is exact in any precision.
        assert torch.equal(out.float(), loop_reference(x.float(), 4, "max", grouping))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_torch_compile_fullgraph(mode, channels_last, fresh_dynamo):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 12, 4, 4).contiguous(memory_format=fmt)
    pool = CrossChannelPool(3, mode=mode, grouping="interleaved")
    compiled = torch.compile(pool, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), pool(x))


def test_torch_compile_fullgraph_functional_overlapping(fresh_dynamo):
    x = torch.randn(2, 10, 4)

    def f(t):
        return cross_channel_pool(t, 4, stride=2, mode="avg")

    torch.testing.assert_close(torch.compile(f, fullgraph=True, backend="eager")(x), f(x))


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0,), {}, "pool_size must be an integer >= 1, got 0"),
        ((-2,), {}, "pool_size must be an integer >= 1, got -2"),
        ((2.5,), {}, "pool_size must be an integer >= 1, got 2.5"),
        ((True,), {}, "pool_size must be an integer >= 1, got True"),
        ((2,), {"mode": "median"}, "mode must be one of .*'median'"),
        ((2,), {"grouping": "random"}, "grouping must be one of .*'random'"),
        ((2,), {"stride": 0}, "stride must be an integer >= 1, got 0"),
        ((2,), {"stride": 3}, "stride must be <= pool_size=2.*got 3"),
        ((4,), {"stride": 2, "grouping": "interleaved"}, "stride=2 < pool_size=4.*'interleaved'"),
        ((4,), {"stride": 2, "mode": "wta"}, "mode='wta' needs non-overlapping.*stride=2"),
        ((2,), {"dim": "1"}, "dim must be an integer, got '1'"),
        ((2,), {"dim": 1.0}, "dim must be an integer, got 1.0"),
        ((2,), {"mode": "lp", "p": 0}, "p must be a number > 0, got 0"),
        ((2,), {"mode": "lp", "p": -1.5}, "p must be a number > 0, got -1.5"),
    ],
)
def test_bad_arguments_raise_in_init_and_functional(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        CrossChannelPool(*args, **kwargs)
    with pytest.raises(ValueError, match=match):
        cross_channel_pool(torch.randn(2, 8), *args, **kwargs)


def test_channel_count_not_divisible_names_layer_expected_and_actual():
    pool = CrossChannelPool(10)
    with pytest.raises(
        ValueError,
        match=r"CrossChannelPool\(pool_size=10.*divisible by pool_size=10, got 48 channels",
    ):
        pool(torch.randn(1, 48, 2, 2))
    with pytest.raises(ValueError, match=r"cross_channel_pool: .*divisible by pool_size=3, got 7"):
        cross_channel_pool(torch.randn(7), 3, dim=0)


def test_overlapping_pools_must_cover_exactly():
    with pytest.raises(ValueError, match=r"pool_size=4, stride=3 .*got 8 channels"):
        CrossChannelPool(4, stride=3)(torch.randn(1, 8, 2))
    with pytest.raises(ValueError, match=r"got 2 channels"):
        CrossChannelPool(4, stride=3)(torch.randn(1, 2, 2))
    assert CrossChannelPool(4, stride=3)(torch.randn(1, 10, 2)).shape == (1, 3, 2)


@pytest.mark.parametrize("dim", [3, -4, 10])
def test_dim_out_of_range(dim):
    with pytest.raises(
        ValueError, match=rf"dim={dim} is out of range for a 3-D input.*-3 <= dim < 3"
    ):
        CrossChannelPool(2, dim=dim)(torch.randn(2, 4, 4))


def test_zero_dim_tensor_is_rejected():
    with pytest.raises(ValueError, match="out of range for a 0-D input"):
        CrossChannelPool(1, dim=0)(torch.tensor(1.0))


def test_output_channels():
    assert CrossChannelPool(10).output_channels(50) == 5
    assert CrossChannelPool(4, stride=2).output_channels(10) == 4
    assert CrossChannelPool(4, mode="wta").output_channels(8) == 8
    with pytest.raises(ValueError, match="got 49 channels"):
        CrossChannelPool(10).output_channels(49)


def test_pickle_deepcopy_and_repr():
    pool = CrossChannelPool(4, mode="lp", grouping="contiguous", stride=2, dim=-1, p=3.0)
    text = repr(pool)
    assert text == (
        "CrossChannelPool(pool_size=4, mode='lp', grouping='contiguous', stride=2, dim=-1, p=3.0)"
    )
    x = torch.randn(3, 10)
    for clone in (pickle.loads(pickle.dumps(pool)), copy.deepcopy(pool)):
        assert repr(clone) == text
        torch.testing.assert_close(clone(x), pool(x))
    assert list(pool.parameters()) == []
