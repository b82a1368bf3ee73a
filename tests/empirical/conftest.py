"""Shared fixtures of the empirical tests."""
import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread for a module of tiny tensors: OpenMP start-up stalls dominate them when the
    2 cores are shared (measured: a 1 s test took 27 s with two threads on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
