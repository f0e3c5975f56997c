"""The trading universe: symbols with company name and GICS sector, plus the benchmark.

`load_universe(path)` reads a CSV (columns symbol,name,sector[,is_benchmark]), a JSON list of
objects with the same keys, or a Parquet file with those columns. Every symbol must match SYMBOL_PATTERN (upper-case letters, digits, '.'
and '-', at most 10 characters): symbols reach SQL and file names, so anything else is refused with
an error naming the line, before anything is written.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import polars as pl

from trading_assets.settings import BENCHMARK_SYMBOL, DEFAULT_UNIVERSE_FILE

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,9}$")
UNIVERSE_SCHEMA = {"symbol": pl.String, "name": pl.String, "sector": pl.String, "is_benchmark": pl.Boolean}


class UniverseError(ValueError):
    """A universe file that cannot be used; the message names the file and line."""


def validate_symbol(symbol: object, where: str = "") -> str:
    if not isinstance(symbol, str) or not SYMBOL_PATTERN.match(symbol):
        raise UniverseError(
            f"{where}invalid symbol {symbol!r}: expected 1-10 upper-case letters, digits, '.' or '-'"
        )
    return symbol


def _records(path: Path) -> list[tuple[str, dict]]:
    """(location, record) pairs; location names the line (CSV) or the item (JSON)."""
    if not path.exists():
        raise UniverseError(f"universe file not found: {path}")
    if path.suffix.lower() == ".parquet":
        try:
            frame = pl.read_parquet(path)
        except Exception as exc:  # polars raises several error types for a corrupt file
            raise UniverseError(f"{path}: not a readable Parquet file: {exc}") from exc
        if "symbol" not in frame.columns:
            raise UniverseError(f"{path}: the Parquet file needs a 'symbol' column (symbol, name, sector)")
        return [(f"{path}: row {i + 1}: ", rec) for i, rec in enumerate(frame.to_dicts())]
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UniverseError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from exc
        if isinstance(data, dict) and "symbols" in data:
            data = data["symbols"]
        if not isinstance(data, list):
            raise UniverseError(f"{path}: expected a JSON list of {{symbol, name, sector}} objects")
        out = []
        for i, item in enumerate(data):
            if isinstance(item, str):
                item = {"symbol": item}
            if not isinstance(item, dict):
                raise UniverseError(f"{path}: item {i + 1}: expected an object, got {type(item).__name__}")
            out.append((f"{path}: item {i + 1}: ", item))
        return out
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or "symbol" not in [f.strip() for f in reader.fieldnames]:
        raise UniverseError(f"{path}: line 1: the header must name a 'symbol' column (symbol,name,sector)")
    return [(f"{path}: line {i + 2}: ", {k.strip(): (v or "").strip() for k, v in row.items() if k}) for i, row in enumerate(reader)]


def load_universe(path: Path | str | None = None, benchmark: str = BENCHMARK_SYMBOL) -> pl.DataFrame:
    """The validated universe, sorted by symbol; the benchmark is added if the file lacks it."""
    path = Path(path or DEFAULT_UNIVERSE_FILE)
    rows, seen = [], {}
    for where, rec in _records(path):
        symbol = validate_symbol(rec.get("symbol"), where)
        if symbol in seen:
            raise UniverseError(f"{where}duplicate symbol {symbol!r} (first at {seen[symbol].rstrip(': ')})")
        seen[symbol] = where
        flag = str(rec.get("is_benchmark", "")).lower() in ("true", "1", "yes") or symbol == benchmark
        rows.append(
            {
                "symbol": symbol,
                "name": str(rec.get("name") or symbol),
                "sector": "Benchmark" if flag else str(rec.get("sector") or "Unknown"),
                "is_benchmark": flag,
            }
        )
    if not any(not r["is_benchmark"] for r in rows):
        raise UniverseError(f"{path}: the universe has no tradable symbols")
    if benchmark not in seen:
        rows.append({"symbol": benchmark, "name": "Benchmark", "sector": "Benchmark", "is_benchmark": True})
    return pl.DataFrame(rows, schema=UNIVERSE_SCHEMA).sort("symbol")
