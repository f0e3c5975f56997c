"""The provider contract: bars and corporate actions for symbols and a date range, or a typed failure.

Every provider returns a `FetchResult` whose frames follow BAR_SCHEMA and ACTION_SCHEMA exactly
(column names, order and dtypes), or raises `ProviderError` with a reason code. A provider that
serves only some symbols returns those and lists the rest in `missing`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, runtime_checkable

import polars as pl

BAR_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "adj_close": pl.Float64(),
    "volume": pl.Float64(),
}

ACTION_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),  # ex-date
    "symbol": pl.String(),
    "action": pl.String(),  # 'split' | 'dividend'
    "value": pl.Float64(),  # split ratio new/old, or cash per share
    "price_factor": pl.Float64(),  # multiplies prices before the ex-date (see corporate_actions.sql)
}

# Failure reasons recorded in provider_metrics.failure_reason
EMPTY_RESPONSE = "EMPTY_RESPONSE"
NETWORK_ERROR = "NETWORK_ERROR"
TIMEOUT = "TIMEOUT"
RATE_LIMITED = "RATE_LIMITED"
MALFORMED_RESPONSE = "MALFORMED_RESPONSE"
NOT_CONFIGURED = "NOT_CONFIGURED"
PARTIAL_COVERAGE = "PARTIAL_COVERAGE"
UNEXPECTED_ERROR = "UNEXPECTED_ERROR"  # a provider raised something that is not a ProviderError/OSError
FAILURE_REASONS = (
    EMPTY_RESPONSE,
    NETWORK_ERROR,
    TIMEOUT,
    RATE_LIMITED,
    MALFORMED_RESPONSE,
    NOT_CONFIGURED,
    PARTIAL_COVERAGE,
    UNEXPECTED_ERROR,
)


class ProviderError(Exception):
    """A provider could not serve a request. `reason` is one of the failure reasons above."""

    def __init__(self, provider: str, reason: str, message: str):
        super().__init__(f"{provider}: {reason}: {message}")
        self.provider = provider
        self.reason = reason


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BAR_SCHEMA)


def empty_actions() -> pl.DataFrame:
    return pl.DataFrame(schema=ACTION_SCHEMA)


@dataclass(frozen=True)
class FetchResult:
    provider: str
    bars: pl.DataFrame
    actions: pl.DataFrame = field(default_factory=empty_actions)
    missing: tuple[str, ...] = ()


@runtime_checkable
class Provider(Protocol):
    name: str
    is_synthetic: bool

    def fetch(self, symbols: Sequence[str], start: date, end: date) -> FetchResult: ...


def validate_symbols(symbols: Sequence[str]) -> list[str]:
    """The requested symbols, validated (universe.SYMBOL_PATTERN) and de-duplicated in order.

    Symbols reach file filters, URLs and SQL, so anything else is refused with a ValueError.
    """
    from trading_assets.universe import validate_symbol  # local: keeps base.py import-light

    if isinstance(symbols, str):
        raise ValueError(f"symbols must be a sequence of strings, not the string {symbols!r}")
    out: list[str] = []
    seen: set[str] = set()
    for s in symbols:
        validate_symbol(s, "provider request: ")
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def check_window(start: date, end: date) -> None:
    """A request window is two dates with start <= end (a ValueError otherwise)."""
    if not isinstance(start, date) or not isinstance(end, date):
        raise ValueError(f"start and end must be dates, got {start!r}, {end!r}")
    if start > end:
        raise ValueError(f"empty window: start {start} is after end {end}")
