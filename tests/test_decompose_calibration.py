"""decompose(calibration=...): factors fitted to the layers' inputs (issue 20's resnet20 target)."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from onebyone.errors import OneByOneError
from onebyone.surgery import decompose
from onebyone.surgery._tucker import whitened_factors

pytestmark = pytest.mark.usefixtures("one_thread")


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(12, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 20, 1), nn.ReLU(),  # a 1x1, for pointwise=True
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(20, 6),
    ).eval()


@pytest.mark.parametrize("method", ["reduce", "tucker2"])
def test_calibrated_rewrite_is_exact_at_full_rank(method):
    net = _net()
    x = torch.randn(4, 12, 7, 7)
    small, report = decompose(net, method=method, rank=1.0, pointwise=True, only_if_cheaper=False,
                              example_input=x[:1], calibration=torch.relu(torch.randn(8, 12, 7, 7)))
    assert {c.name: c.method for c in report.changes} == {"0": method, "2": "reduce", "6": "svd"}
    # against the original model's own nn.Conv2d / nn.Linear kernels
    torch.testing.assert_close(small(x), net(x), rtol=1e-4, atol=1e-5)


def test_inputs_in_a_subspace_are_reproduced_exactly_at_that_rank():
    # Inputs that span only 3 of the 12 channel directions: a rank-3 reduction that keeps those
    # directions loses nothing, whatever the weights; the weight's own SVD does not know them.
    torch.manual_seed(1)
    conv = nn.Conv2d(12, 16, 3, padding=1).eval()
    mix = torch.randn(12, 3)
    x = torch.einsum("cr,nrhw->nchw", mix, torch.randn(6, 3, 9, 9))
    calibrated, _ = decompose(nn.Sequential(conv), method="reduce", rank=3, round_to=1, example_input=x[:1],
                              calibration=x)
    plain, _ = decompose(nn.Sequential(conv), method="reduce", rank=3, round_to=1, example_input=x[:1])
    y = conv(x)
    torch.testing.assert_close(calibrated(x), y, rtol=1e-4, atol=1e-4)
    assert (plain(x) - y).norm() > 0.1 * y.norm()


def test_linear_error_is_eckart_young_on_the_outputs():
    # The best rank-r W' for the outputs W X has ||(W - W') X|| = the tail singular values of W X.
    torch.manual_seed(2)
    fc = nn.Linear(10, 8, bias=False).eval()
    x = torch.randn(200, 10) @ torch.randn(10, 10)  # correlated features
    calibrated, _ = decompose(nn.Sequential(fc), rank=3, round_to=1, example_input=x[:1], calibration=x)
    plain, _ = decompose(nn.Sequential(fc), rank=3, round_to=1, example_input=x[:1])
    y = fc(x).detach()
    s = torch.linalg.svdvals(fc.weight.detach().double() @ x.double().T)
    best = float(s[3:].norm())
    got = float((calibrated(x).double() - y.double()).norm().detach())
    assert got == pytest.approx(best, rel=1e-3)
    assert float((plain(x).double() - y.double()).norm().detach()) > 1.05 * best


def test_calibrated_output_error_beats_weight_svd_on_relu_inputs():
    net = _net()
    torch.manual_seed(3)
    mix = torch.randn(12, 12) * torch.linspace(1.0, 0.05, 12)  # correlated channels, decaying variance

    def images(n):
        return torch.relu(torch.einsum("cd,ndhw->nchw", mix, torch.randn(n, 12, 7, 7)) + 0.3)

    x, held_out = images(16), images(16)
    plain, r_plain = decompose(net, method="reduce", rank=4, round_to=1, example_input=x)
    fitted, r_fit = decompose(net, method="reduce", rank=4, round_to=1, example_input=x, calibration=x)
    assert r_fit.changes[0].output_error < r_plain.changes[0].output_error
    with torch.no_grad():  # on inputs the calibration did not see
        y = net(held_out)
        assert (fitted(held_out) - y).norm() < (plain(held_out) - y).norm()


def test_dataset_and_tensor_give_the_same_factors():
    net = _net()
    x = torch.randn(40, 12, 5, 5)  # more than one calibration batch
    a, _ = decompose(net, method="reduce", rank=4, example_input=x[:1], calibration=x)
    b, _ = decompose(net, method="reduce", rank=4, example_input=x[:1],
                     calibration=TensorDataset(x, torch.zeros(40, dtype=torch.long)))
    torch.testing.assert_close(a(x), b(x))


def test_whitened_factors_at_full_rank_and_on_a_dead_channel():
    torch.manual_seed(4)
    m = torch.randn(5, 4)
    x = torch.randn(50, 4)
    x[:, 2] = 0  # a channel the inputs never use: the ridge keeps S invertible
    p, k = whitened_factors(m, x.T @ x, 4)
    torch.testing.assert_close(k @ p, m, rtol=1e-4, atol=1e-4)
    p3, k3 = whitened_factors(m, x.T @ x, 3)  # rank 3 = the used channels: exact on the data
    torch.testing.assert_close(x @ (k3 @ p3).T, x @ m.T, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(p3.norm(dim=1), torch.ones(3))


@pytest.mark.parametrize(
    ("calibration", "error", "match"),
    [
        (torch.zeros(0, 12, 5, 5), ValueError, "at least one input"),
        ("images", TypeError, "calibration must be a tensor batch or a dataset"),
        (torch.full((2, 12, 5, 5), float("nan")), ValueError, "NaN or inf"),
        ([torch.zeros(12, 5, 5), torch.zeros(12, 4, 4)], ValueError, "one shape"),
        ([(1.0, 0)], TypeError, "got a float"),
        ([], ValueError, "empty dataset"),
    ],
)
def test_bad_calibration(calibration, error, match):
    with pytest.raises(error, match=match):
        decompose(_net(), rank=4, example_input=torch.zeros(1, 12, 5, 5), calibration=calibration)


def test_calibration_the_model_cannot_run_is_the_users_error():
    with pytest.raises(OneByOneError, match="calibration"):
        decompose(_net(), rank=4, example_input=torch.zeros(1, 12, 5, 5), calibration=torch.zeros(2, 3, 5, 5))


def test_rank_options_measure_the_output_error_on_the_calibration_inputs():
    # The policies' error of a calibrated Linear at rank r is the energy of W X beyond its r
    # leading singular values over the energy kept (Eckart-Young on the outputs).
    from onebyone.surgery._ranks import Candidate, _options

    torch.manual_seed(5)
    fc = nn.Linear(10, 8, bias=False)
    x = torch.randn(300, 10) @ torch.randn(10, 10)
    c = Candidate("fc", fc, "svd", second_moment=(x.T @ x).double())
    s2 = torch.linalg.svdvals(fc.weight.detach().double() @ x.double().T) ** 2
    for macs, error, (r,) in _options(c, 1):
        lost = float(s2[r:].sum() / s2.sum())
        assert macs == (10 + 8) * r
        assert error == pytest.approx(lost / (1 - lost), rel=1e-4)


def test_budget_with_calibration_cuts_the_layer_whose_inputs_are_low_rank():
    # Layer 0 only ever sees a 2-dimensional subspace: rank 2 costs nothing on the data, so a
    # budget that rank 2 there meets is met by cutting layer 0 alone; by the weights, both
    # random layers look alike.
    torch.manual_seed(6)
    net = nn.Sequential(nn.Linear(16, 16, bias=False), nn.ReLU(), nn.Linear(16, 16, bias=False)).eval()
    x = torch.randn(400, 2) @ torch.randn(2, 16)
    small, report = decompose(net, budget=0.65, round_to=1, example_input=x, calibration=x)
    assert {c.name: c.ranks for c in report.changes} == {"0": (2,)}
    torch.testing.assert_close(small(x), net(x), rtol=1e-4, atol=1e-4)
    _, plain = decompose(net, budget=0.65, round_to=1, example_input=x)
    assert {c.name for c in plain.changes} == {"0", "2"}  # by the weights: both cut
