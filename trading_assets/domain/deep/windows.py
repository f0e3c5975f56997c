"""Per-symbol windows of consecutive rows without materializing them all (pure numpy).

A panel is a 2-D array `values` (n rows x F columns) whose rows are sorted by (symbol, date), with
`codes` (n,) the symbol of each row. The window of length W ending at row r is rows r-W+1 .. r, valid
when all W rows belong to r's symbol. 500 symbols x 1,259 sessions x W=20 x 100 features would be
1.3e9 floats (5 GB in float32) if built at once, so callers keep `ends` (the valid row indices) and
gather one batch at a time.
"""

from __future__ import annotations

import numpy as np


def window_ends(codes: np.ndarray, length: int) -> np.ndarray:
    """Row indices r whose window of `length` rows (r-length+1 .. r) lies within one symbol.

    With `codes` sorted (equal codes contiguous): r is valid iff r - length + 1 >= the first row of
    r's symbol, i.e. position-in-symbol >= length - 1.
    """
    if length < 1:
        raise ValueError(f"window length must be >= 1, got {length}")
    codes = np.asarray(codes)
    n = codes.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any(codes[1:] < codes[:-1]):
        raise ValueError("rows must be sorted by symbol (codes non-decreasing)")
    starts = np.r_[0, np.flatnonzero(codes[1:] != codes[:-1]) + 1]
    first_of_row = np.repeat(starts, np.diff(np.r_[starts, n]))
    pos = np.arange(n) - first_of_row
    return np.flatnonzero(pos >= length - 1).astype(np.int64)


def gather(values: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """The windows ending at `ends`: array (len(ends), length, F), oldest row first."""
    offsets = np.arange(-length + 1, 1)
    return values[np.asarray(ends)[:, None] + offsets[None, :]]
