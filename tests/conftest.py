import pytest
import torch


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
