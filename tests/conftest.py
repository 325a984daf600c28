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


@pytest.fixture
def real_saved_bytes():
    """``f(model, x)``: bytes of the distinct storages a real CPU training forward of ``model`` on
    ``x`` saves for backward (parameters and buffers excluded), with the hooks analyze uses."""

    def measure(model, x: torch.Tensor) -> int:
        model = model.train()
        own = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
        seen: dict[int, int] = {}

        def pack(t):
            st = t.untyped_storage()
            if st.data_ptr() not in own and st.nbytes():
                seen[st.data_ptr()] = st.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        del out
        return sum(seen.values())

    return measure


@pytest.fixture
def run_process_group():
    """Run a command (e.g. ``torch.distributed.run`` and its workers) in its own process group;
    return ``(returncode, stdout, stderr)``. On a timeout or an error the whole group is killed,
    so no worker is left behind."""
    import signal
    import subprocess

    def run(cmd, env, timeout=240):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)  # fmt: skip
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:  # never leave the workers behind
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        return proc.returncode, stdout, stderr

    return run
