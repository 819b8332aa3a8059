"""A fixture shared by the Attention tests (a plain module: both test files import it by name)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The tests' tiny models gain nothing from a second intra-op thread, and on a busy two-core machine
    its synchronisation makes them many times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
