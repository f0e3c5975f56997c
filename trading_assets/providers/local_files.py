"""Local files: folders (or single files) of CSV or Parquet in the long bar format.

The provider takes one path or several (a sequence, or one string of paths joined by os.pathsep:
TRADING_LOCAL_DATA_DIR=../shared/data/prices:../shared/data/benchmark/spy_1993_2018.parquet); each
path is a folder (every CSV/Parquet file in it) or one file. Their bars are concatenated in the
order given (a (date, symbol) two sources both hold arrives twice: the router keeps the first and
counts the copy in duplicate_count).

Each file holds rows (date, symbol, open, high, low, close, volume[, adj_close]); column names are
matched case-insensitively with spaces as underscores ("Adj Close" -> adj_close). A file without a
symbol column is one symbol's series, named by the file's stem (AAPL.csv). adj_close absent -> close
(the provider has none; see price_history.sql). An optional `corporate_actions.csv|parquet` in the
folder holds actions with ACTION_SCHEMA columns; without it the provider delivers no actions.

The folder is read once per process and kept in memory, keyed by (folder, each file's name, size and
mtime): a changed file is re-read on the next fetch. Requests filter that frame lazily with polars.
Rows are returned exactly as stored: duplicated (date, symbol) rows included (the router counts
them), null fields kept (the quality stage flags them).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import polars as pl

from trading_assets.providers.base import (
    ACTION_SCHEMA,
    BAR_SCHEMA,
    MALFORMED_RESPONSE,
    NOT_CONFIGURED,
    FetchResult,
    ProviderError,
    check_window,
    empty_actions,
    validate_symbols,
)

ACTIONS_STEM = "corporate_actions"
_SUFFIXES = (".csv", ".parquet", ".pq")
_REQUIRED = ("date", "open", "high", "low", "close", "volume")

_CACHE: dict[tuple, tuple[pl.DataFrame, pl.DataFrame]] = {}
_CACHE_LOCK = threading.Lock()


def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def _read(path: Path) -> pl.DataFrame:
    """One file as a frame with normalized column names; MALFORMED_RESPONSE naming the file otherwise."""
    try:
        if path.suffix.lower() == ".csv":
            frame = pl.read_csv(path, try_parse_dates=True, infer_schema_length=10_000)
        else:
            frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several error types for unreadable files
        raise ProviderError("local", MALFORMED_RESPONSE, f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    return frame.rename({c: _norm(c) for c in frame.columns})


def _to_bars(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    cols = set(frame.columns)
    if "symbol" not in cols:
        frame = frame.with_columns(pl.lit(path.stem.upper()).alias("symbol"))
    missing = [c for c in _REQUIRED if c not in cols]
    if missing:
        raise ProviderError(
            "local", MALFORMED_RESPONSE, f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(frame.columns)})"
        )
    if "adj_close" not in cols:
        frame = frame.with_columns(pl.col("close").alias("adj_close"))
    try:
        date_col = pl.col("date")
        if frame.schema["date"] == pl.String:
            date_col = date_col.str.to_date(strict=True)
        return frame.select(date_col.cast(pl.Date).alias("date"), *(pl.col(c) for c in list(BAR_SCHEMA)[1:])).cast(
            BAR_SCHEMA, strict=True
        )
    except Exception as exc:
        raise ProviderError("local", MALFORMED_RESPONSE, f"{path}: columns of the wrong type: {exc}") from exc


def _to_actions(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    missing = [c for c in ACTION_SCHEMA if c not in frame.columns]
    if missing:
        raise ProviderError("local", MALFORMED_RESPONSE, f"{path}: missing action column(s) {', '.join(missing)}")
    try:
        date_col = pl.col("date")
        if frame.schema["date"] == pl.String:
            date_col = date_col.str.to_date(strict=True)
        out = frame.select(date_col.cast(pl.Date).alias("date"), *(pl.col(c) for c in list(ACTION_SCHEMA)[1:]))
        out = out.cast(ACTION_SCHEMA, strict=True)
    except Exception as exc:
        raise ProviderError("local", MALFORMED_RESPONSE, f"{path}: action columns of the wrong type: {exc}") from exc
    bad = out.filter(~pl.col("action").is_in(["split", "dividend"]))
    if bad.height:
        raise ProviderError("local", MALFORMED_RESPONSE, f"{path}: unknown action(s) {sorted(set(bad['action'].to_list()))}")
    return out


def local_paths(value: "Path | str | Sequence[Path | str] | None") -> tuple[Path, ...]:
    """The paths of a local-provider setting: None/"" -> (); a str is split on os.pathsep; a Path is one path."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(Path(p) for p in value.split(os.pathsep) if p.strip())
    if isinstance(value, Path):
        return (value,)
    return tuple(q for v in value for q in local_paths(v))


def load_paths(paths: Sequence[Path]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(bars, actions) of several folders or files, in the order given (each cached by load_folder)."""
    parts = [load_folder(p) for p in paths]
    if len(parts) == 1:
        return parts[0]
    bars = pl.concat([b for b, _ in parts]).sort(["symbol", "date"], maintain_order=True)
    actions = pl.concat([a for _, a in parts]).sort(["symbol", "date"], maintain_order=True)
    return bars, actions


def load_folder(data_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(bars, actions) of a folder (or of one file), read once per process and cached by (path, files,
    sizes, mtimes)."""
    if data_dir.is_file():
        files = [data_dir] if data_dir.suffix.lower() in _SUFFIXES else []
    else:
        files = sorted(p for p in data_dir.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES)
    if not files:
        raise ProviderError("local", NOT_CONFIGURED, f"no CSV or Parquet files in {data_dir}")
    key = (str(data_dir.resolve()), tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    bar_parts, action_parts = [], []
    for path in files:
        frame = _read(path)
        if path.stem.lower() == ACTIONS_STEM:
            action_parts.append(_to_actions(frame, path))
        else:
            bar_parts.append(_to_bars(frame, path))
    if not bar_parts:
        raise ProviderError("local", NOT_CONFIGURED, f"{data_dir} holds only {ACTIONS_STEM} files, no bars")
    # stable sort: a duplicated (date, symbol) keeps the order the files delivered it in
    bars = pl.concat(bar_parts).sort(["symbol", "date"], maintain_order=True)
    actions = pl.concat(action_parts).sort(["symbol", "date"], maintain_order=True) if action_parts else empty_actions()
    with _CACHE_LOCK:
        for k in [k for k in _CACHE if k[0] == key[0]]:
            del _CACHE[k]  # one version per folder
        _CACHE[key] = (bars, actions)
    return bars, actions


class LocalFilesProvider:
    """Bars (and optional actions) from folders or files of CSV/Parquet (name "local")."""

    name = "local"
    is_synthetic = False

    def __init__(self, data_dir: Path | str | Sequence[Path | str] | None):
        self.data_paths = local_paths(data_dir)
        self.data_dir = self.data_paths[0] if self.data_paths else None  # the first path (one-folder callers)

    def fetch(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        syms = validate_symbols(symbols)
        check_window(start, end)
        if self.data_dir is None:
            raise ProviderError(
                self.name, NOT_CONFIGURED, "no local data folder configured (set TRADING_LOCAL_DATA_DIR or --data-dir)"
            )
        for path in self.data_paths:
            if not path.exists():
                raise ProviderError(self.name, NOT_CONFIGURED, f"local data folder {path} does not exist")
        bars, actions = load_paths(self.data_paths)
        in_window = pl.col("symbol").is_in(syms) & pl.col("date").is_between(start, end)
        out = bars.lazy().filter(in_window).sort(["date", "symbol"], maintain_order=True).collect()
        acts = actions.lazy().filter(in_window).sort(["date", "symbol", "action"], maintain_order=True).collect()
        served = set(out["symbol"].unique().to_list())
        return FetchResult(self.name, out, acts, missing=tuple(s for s in syms if s not in served))
