"""Speed and memory benchmarks; run `python -m benchmarks` from the repository root."""
from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def device_threads(device: str):
    """One CPU thread for CPU cases (on a shared CPU more threads mostly measure the neighbours' load); the
    previous thread count is restored afterwards. Yields the thread count in use."""
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
