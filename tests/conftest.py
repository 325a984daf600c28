import os

import pytest
import torch
from hypothesis import settings

# Property tests draw the same examples on every run (CI must not pass or fail by chance);
# HYPOTHESIS_PROFILE=explore draws new random examples each run, for looking for bugs locally.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module (opt in: ``pytestmark = pytest.mark.usefixtures("one_thread")``).

    On tiny tensors extra threads only add barrier waits, and on a shared, busy CPU a descheduled
    worker stalls every op (10-100x slower). The previous setting is restored afterwards.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _no_user_device_profile(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's calibrated device profile (~/.cache/onebyone)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _no_onnx_latency(monkeypatch):
    """compress, fuse and slim skip the onnxruntime latency (4 exports: seconds per command) in
    tests; tests/test_onnx_latency.py puts the real one back and checks it."""
    import onebyone.onnx

    monkeypatch.setattr(onebyone.onnx, "latency_or_note", lambda *args, **kwargs: (None, None))
