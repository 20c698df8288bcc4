import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Block tests use tiny tensors: intra-op threads only add contention on a 2-core machine
    (OpenMP spin-waits make a 2-thread torch beside another busy process 10-100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
