"""The corporate actions known at a session: the provider's (known at their ex-date) and the inferred
ones (domain/quality.py "Held moves": known at their confirming session, applied from their ex-date).

A reader computing sessions up to `end` reads every action known by `end`, as (date = ex-date, symbol,
action, value, price_factor). For an inferred action with ex-date e known at c, the bars of e..c-1
are MOVE_UNCONFIRMED, which the features leave out of every window (their own rows are null): so no
row before c depends on whether the action is known, and a daily run at t and a range run through t
give the same rows (docs/ARCHITECTURE.md "Prices and adjustments").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl

from trading_assets.store.warehouse import Warehouse

ACTION_READ_SCHEMA = {"date": pl.Date, "symbol": pl.String, "action": pl.String, "value": pl.Float64, "price_factor": pl.Float64}


def actions_known_by(wh: Warehouse, end: date, symbols: Sequence[str], start: date | None = None) -> pl.DataFrame:
    """Provider actions with ex-date in [start, end] and inferred actions known in [start, end] (their
    ex-date as `date`), for `symbols`, sorted by (symbol, date, action). start None: from the beginning."""
    lo = start or date(1900, 1, 1)
    frame = wh.read(
        """SELECT date, symbol, action, value, price_factor FROM corporate_actions
           WHERE date BETWEEN ? AND ? AND symbol IN (SELECT unnest(?::VARCHAR[]))
           UNION ALL
           SELECT ex_date AS date, symbol, action, ratio AS value, price_factor FROM inferred_actions
           WHERE date BETWEEN ? AND ? AND symbol IN (SELECT unnest(?::VARCHAR[]))
           ORDER BY symbol, date, action""",
        [lo, end, list(symbols), lo, end, list(symbols)],
    )
    return frame.cast(ACTION_READ_SCHEMA) if frame.height else pl.DataFrame(schema=ACTION_READ_SCHEMA)
