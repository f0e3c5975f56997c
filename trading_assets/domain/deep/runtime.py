"""Deterministic PyTorch on the CPU: one place that fixes seeds, thread counts and algorithms.

Same inputs + same seed -> bit-identical weights and scores: `torch.use_deterministic_algorithms(True)`
(an op without a deterministic kernel raises instead of silently varying), a fixed intra-op thread
count (a float reduction split over a different number of threads sums in a different order), and
every random draw from a `torch.Generator` seeded from the caller's seed.
"""

from __future__ import annotations

import io
from contextlib import contextmanager

import numpy as np
import torch

DEFAULT_THREADS = 1  # 2-core machines run a whole pipeline beside the training: one thread, reproducible sums


@contextmanager
def deterministic(seed: int, threads: int = DEFAULT_THREADS):
    """Run a block with seeded, deterministic, fixed-thread PyTorch; restores the previous state."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(max(1, int(threads)))
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)


def to_bytes(state: dict) -> bytes:
    """A state dict (tensors and plain values) as bytes; torch.save writes no timestamps (tested)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def from_bytes(blob: bytes) -> dict:
    """The inverse of `to_bytes`; weights_only=True refuses pickled code in a tampered artifact."""
    try:
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign bytes: say what failed, not a pickle trace
        raise ValueError(f"not a readable deep-model artifact ({type(exc).__name__}: {exc})") from exc


def as_tensor(x: np.ndarray) -> torch.Tensor:
    """float32 tensor of a finite array (forward.finite32: NaN -> 0, inputs are session-normalized, 0 = the median)."""
    from trading_assets.domain.deep.forward import finite32

    return torch.from_numpy(np.ascontiguousarray(finite32(x)))
