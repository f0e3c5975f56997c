"""A small seeded synthetic market for the feature tests (random-walk OHLCV bars on NYSE sessions)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from trading_assets.domain import calendar

ACTION_SCHEMA = {"date": pl.Date, "symbol": pl.String, "action": pl.String, "value": pl.Float64, "price_factor": pl.Float64}


def no_actions() -> pl.DataFrame:
    return pl.DataFrame(schema=ACTION_SCHEMA)


def make_bars(symbols, start: date, n_sessions: int, seed: int = 11, benchmark: str | None = "SPY") -> pl.DataFrame:
    """Bars for `symbols` (+ the benchmark) over the first n_sessions sessions from start.

    Each symbol: log return = beta * market + idiosyncratic noise; open/high/low around the close,
    always consistent (low <= open, close <= high); volume lognormal.
    """
    days = calendar.sessions(start, date(start.year + 12, 12, 31))[:n_sessions]
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0003, 0.01, n_sessions)
    names = list(symbols) + ([benchmark] if benchmark else [])
    frames = []
    for k, sym in enumerate(names):
        if sym == benchmark:
            r = market
        else:
            r = (0.5 + 0.2 * k) * market + rng.normal(0.0, 0.012, n_sessions)
        close = 50.0 * (1 + k) * np.exp(np.cumsum(r))
        open_ = close * np.exp(rng.normal(0, 0.004, n_sessions))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n_sessions)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n_sessions)))
        volume = np.round(np.exp(rng.normal(14.0, 0.4, n_sessions)))
        frames.append(
            pl.DataFrame(
                {"date": days, "symbol": sym, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
            )
        )
    return pl.concat(frames).sort("date", "symbol")
