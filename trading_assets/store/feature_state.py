"""The feature_state table: what a daily features run continues from (domain/features/incremental.py).

A state row (as_of, symbol) is used for the next session only if it is still true of the warehouse:
same state_version, and the same digest of every input a symbol's features up to as_of were computed
from. The digest, per symbol, over rows dated <= as_of:

    digest = hash(n_b, X_b, n_q, X_q, n_a, X_a, n_i, X_i)
    n_b, X_b = count, bit_xor(hash(date, open, high, low, close, volume)) of price_history
    n_q, X_q = the same over hash(date) of the bars the features leave out (EXCLUDED_BARS: failed
               quality or held as an unconfirmed move)
    n_a, X_a = the same over hash(date, action, price_factor) of corporate_actions (ex-date <= as_of)
    n_i, X_i = the same over hash(date, ex_date, action, price_factor) of inferred_actions known by as_of

(DuckDB's hash; rows are unique per key, so a revised, late or deleted row changes a count or an xor).
A change of any of them -- a bar revised or delivered late, a verdict changed by a rerun, a corporate
action recorded late, an action inferred -- makes the state unusable and the symbol is recomputed
from its first session. Actions with ex-date after as_of do not enter: they leave the adjusted bars
up to as_of unchanged (point-in-time adjustment).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import polars as pl

from trading_assets.domain.features.incremental import STATE_PREFIX, state_schema
from trading_assets.settings import FeatureSettings
from trading_assets.store.warehouse import Warehouse

TABLE = "feature_state"
# the bars the features leave out of every window (defs/features.py reads the same set)
EXCLUDED_BARS = "(NOT passed OR list_contains(reason_codes, 'MOVE_UNCONFIRMED'))"

_DIGEST_SQL = f"""
WITH u AS (SELECT unnest(?::VARCHAR[]) AS symbol),
b AS (SELECT symbol, count(*) AS n, bit_xor(hash(date, open, high, low, close, volume)) AS x
      FROM price_history WHERE date <= ? AND symbol IN (SELECT symbol FROM u) GROUP BY symbol),
q AS (SELECT symbol, count(*) AS n, bit_xor(hash(date)) AS x
      FROM data_quality_log WHERE date <= ? AND {EXCLUDED_BARS} AND symbol IN (SELECT symbol FROM u) GROUP BY symbol),
a AS (SELECT symbol, count(*) AS n, bit_xor(hash(date, action, price_factor)) AS x
      FROM corporate_actions WHERE date <= ? AND symbol IN (SELECT symbol FROM u) GROUP BY symbol),
i AS (SELECT symbol, count(*) AS n, bit_xor(hash(date, ex_date, action, price_factor)) AS x
      FROM inferred_actions WHERE date <= ? AND symbol IN (SELECT symbol FROM u) GROUP BY symbol)
SELECT u.symbol, hash(b.n, b.x, q.n, q.x, a.n, a.x, i.n, i.x) AS inputs_digest
FROM u LEFT JOIN b USING (symbol) LEFT JOIN q USING (symbol) LEFT JOIN a USING (symbol) LEFT JOIN i USING (symbol)
ORDER BY u.symbol
"""


def input_digests(wh: Warehouse, as_of: date, symbols: Sequence[str]) -> pl.DataFrame:
    """(symbol, inputs_digest) of every symbol: the digest of its inputs dated <= as_of (module docstring)."""
    return wh.read(_DIGEST_SQL, [list(symbols), as_of, as_of, as_of, as_of])


def usable_states(wh: Warehouse, as_of: date, symbols: Sequence[str], version: str, settings: FeatureSettings) -> tuple[pl.DataFrame, dict[str, int]]:
    """The stored states after session as_of that may be continued: same state_version and an
    unchanged input digest. Returns (state frame in incremental.state_schema, counts of the symbols
    left to a full recomputation by reason: no_state, other_version, inputs_changed)."""
    schema = state_schema(settings)
    present = set(wh.read(f"SELECT column_name FROM information_schema.columns WHERE table_name = '{TABLE}'")["column_name"])
    cols = [c for c in schema if c in present]
    if len(cols) < len(schema):  # a recursion added since the states were written: none is usable
        return pl.DataFrame(schema=schema), {"no_state": len(symbols), "other_version": 0, "inputs_changed": 0}
    stored = wh.read(
        f"SELECT state_version, inputs_digest, {', '.join(cols)} FROM {TABLE} WHERE as_of = ? "
        "AND symbol IN (SELECT unnest(?::VARCHAR[])) ORDER BY symbol",
        [as_of, list(symbols)],
    )
    same = stored.filter(pl.col("state_version") == version)
    now = input_digests(wh, as_of, same["symbol"].to_list()) if same.height else pl.DataFrame(schema={"symbol": pl.String, "inputs_digest": pl.UInt64})
    ok = same.join(now, on="symbol", suffix="_now").filter(pl.col("inputs_digest") == pl.col("inputs_digest_now"))
    reasons = {"no_state": len(symbols) - stored.height, "other_version": stored.height - same.height, "inputs_changed": same.height - ok.height}
    return ok.select([pl.col(c).cast(t) for c, t in schema.items()]), reasons


def write_states(wh: Warehouse, states: pl.DataFrame, as_of: date, start: date, version: str, run_id: str) -> int:
    """Replace the states of the window [start, as_of] by `states` (the window end's), with their
    digests now (the run wrote every input of as_of before the features step)."""
    if states.height == 0:  # nothing long enough to continue: the window's old states go
        return wh.replace_window(TABLE, pl.DataFrame(schema={"as_of": pl.Date}), start, as_of, date_column="as_of")
    wh.ensure_columns(TABLE, {c: "DOUBLE" for c in states.columns if c.startswith(STATE_PREFIX)})
    digests = input_digests(wh, as_of, states["symbol"].to_list())
    frame = states.join(digests, on="symbol", how="left").with_columns(
        pl.lit(as_of).alias("as_of"),
        pl.lit(version).alias("state_version"),
        pl.lit(datetime.now()).cast(pl.Datetime("us")).alias("computed_at"),
        pl.lit(run_id).alias("run_id"),
    )
    return wh.replace_window(TABLE, frame, start, as_of, date_column="as_of")
