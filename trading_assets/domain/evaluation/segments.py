"""Deterministic per-group reductions for the evaluation metrics (numpy over sorted segments).

polars' group_by sums a large frame in per-thread partitions and merges the partial sums, so a
group's float sum can differ in its last bits with the size of the frame around it; the evaluation
tables must be the same whether a session is computed alone or inside five years (run-boundary
independence). Here a frame is sorted by its group keys and a row key, and each group's values are
reduced in that row order, one segment at a time (np.add.reduceat), so a group's result depends on
its own rows only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


def segment_starts(frame: pl.DataFrame, keys: Sequence[str]) -> np.ndarray:
    """Start offsets of the runs of equal `keys` in `frame` (already sorted by them)."""
    if frame.height == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.zeros(frame.height, dtype=bool)
    change[0] = True
    for k in keys:
        s = frame[k]
        change[1:] |= (s.slice(1) != s.slice(0, frame.height - 1)).fill_null(True).to_numpy()
    return np.flatnonzero(change)


def segment_sum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The sum of each segment (values in row order)."""
    if len(starts) == 0:
        return np.zeros(0)
    return np.add.reduceat(values, starts)


def segment_ids(starts: np.ndarray, n: int) -> np.ndarray:
    """The segment index of every row."""
    ids = np.zeros(n, dtype=np.int64)
    if len(starts) > 1:
        ids[starts[1:]] = 1
    return np.cumsum(ids)


def segment_ranks(values: np.ndarray, seg: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, within its segment: (average rank, min rank ascending, min rank descending), ranks 1..n.

    average: ties share the mean of the ranks they span (scipy.stats.rankdata "average");
    min ascending: 1 + #{j : v_j < v_i}; min descending: 1 + #{j : v_j > v_i}. values: finite.
    Segments of similar sizes (sessions of one universe) are ranked on a padded matrix, one short
    sort per segment (segment_ranks_2d, measured ~1.7x faster on 2,000 sessions x 500 names), others
    with one stable sort of everything; both give the same numbers."""
    n = len(values)
    if n and len(starts) * int(np.diff(np.append(starts, n)).max()) <= 2 * n:
        return segment_ranks_2d(values, seg, starts)
    return _segment_ranks_sorted(values, seg, starts)


def _segment_ranks_sorted(values: np.ndarray, seg: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(values)
    if n == 0:
        e = np.zeros(0)
        return e, e, e
    order = np.lexsort((values, seg))  # by segment, then value (stable)
    v, g = values[order], seg[order]
    pos = np.arange(n) - starts[g] + 1  # 1-based position inside the segment
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = (g[1:] != g[:-1]) | (v[1:] != v[:-1])
    run = np.cumsum(new_run) - 1
    run_first = pos[new_run]
    run_last = np.append(pos[np.flatnonzero(new_run)[1:] - 1], pos[-1])
    size = np.diff(np.append(starts, n))  # rows per segment
    avg, lo, hi = np.empty(n), np.empty(n), np.empty(n)
    avg[order] = (run_first[run] + run_last[run]) / 2.0
    lo[order] = run_first[run]
    hi[order] = size[g] - run_last[run] + 1
    return avg, lo, hi


def segment_ranks_2d(values: np.ndarray, seg: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """segment_ranks, computed on a (segments x longest segment) matrix sorted row by row (padding
    +inf after the values): a short sort per segment instead of one long sort of everything.
    values must be finite. Same results as segment_ranks."""
    n = len(values)
    if n == 0:
        e = np.zeros(0)
        return e, e, e
    size = np.diff(np.append(starts, n))
    g, m = len(starts), int(size.max())
    col = np.arange(n) - starts[seg]
    mat = np.full((g, m), np.inf)
    mat[seg, col] = values
    order = np.argsort(mat, axis=1, kind="stable")
    srt = np.take_along_axis(mat, order, axis=1)
    j = np.broadcast_to(np.arange(m), (g, m))
    new_run = np.ones((g, m), dtype=bool)
    new_run[:, 1:] = srt[:, 1:] != srt[:, :-1]
    first = np.maximum.accumulate(np.where(new_run, j, 0), axis=1)  # 0-based first position of the run
    end_run = np.ones((g, m), dtype=bool)
    end_run[:, :-1] = new_run[:, 1:]
    last = np.flip(np.minimum.accumulate(np.flip(np.where(end_run, j, m), axis=1), axis=1), axis=1)
    out = []
    for ranked in ((first + last) / 2.0 + 1.0, first + 1.0, size[:, None] - last):
        back = np.empty((g, m))
        np.put_along_axis(back, order, ranked, axis=1)
        out.append(back[seg, col])
    return out[0], out[1], out[2]
