"""Systemic data faults: which sessions are halted for trading (#16).

Pure (polars). For a session t, over the rows of `data_quality_log` (domain/quality.py):
    N_t = symbols with a row at t, the benchmark(s) and the NOT_LISTED rows excluded (a symbol not
          listed yet or delisted is outside the session's tradable set)
    F_t = those of them whose row failed quality (passed = false)
    failing_share_t = F_t / N_t   (0 when N_t = 0)
    halted_t = failing_share_t > max_failing_share      (QualitySettings.max_failing_share, 0.25)

A halted session is a systemic data fault: one bad symbol is that symbol's problem, a quarter of the
universe failing on one session says the session's data cannot be trusted at all (a vendor's broken
file, a half-delivered day). What halting means downstream (QualitySettings.on_systemic_fault =
"halt_session"): every decision of the session is REJECT with SYSTEMIC_DATA_FAULT (meta_brain), the
book fills nothing at its open and orders nothing, positions are held and marked at their last valid
close where the session has none (domain/portfolio.py), and the rest of the range proceeds. With
"stop_run" the blocking check stops the run instead (defs/quality.py).

The asset assesses quality a chunk of symbols at a time, so the counts come in parts:
`session_tallies(chunk)` per chunk, `session_health(tallies)` over all of them. A session's row depends
only on that session's quality rows (so a daily run and a range run agree).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import polars as pl

EXAMPLES = 20  # failing symbols named per halted session (sorted), for the check's metadata and the audit
TOP_CODES = 5  # reason codes reported per session (most frequent among its failing rows)

TALLY_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date,
    "symbols": pl.Int64,
    "failing": pl.Int64,
    "failing_symbols": pl.List(pl.String),
    "failing_codes": pl.List(pl.String),  # the codes of the failing rows, with repetition
}
SESSION_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date,
    "symbols": pl.Int64,  # N_t
    "failing": pl.Int64,  # F_t
    "failing_share": pl.Float64,
    "max_failing_share": pl.Float64,  # the limit it was compared with
    "halted": pl.Boolean,
    "top_codes": pl.String,  # JSON {code: failing rows}, the TOP_CODES most frequent (ties by code)
    "examples": pl.List(pl.String),  # the first EXAMPLES failing symbols, sorted
}


def session_tallies(quality: pl.DataFrame, benchmarks: Sequence[str] = ()) -> pl.DataFrame:
    """Per session of `quality` (rows date, symbol, passed, reason_codes): N, F, the failing symbols and
    their codes (TALLY_SCHEMA). Tallies of disjoint symbol chunks add up (session_health)."""
    if quality.height == 0:
        return pl.DataFrame(schema=TALLY_SCHEMA)
    rows = quality.filter(~pl.col("symbol").is_in(list(benchmarks)) & ~pl.col("reason_codes").list.contains("NOT_LISTED"))
    failing = ~pl.col("passed")
    out = rows.group_by("date").agg(
        pl.len().cast(pl.Int64).alias("symbols"),
        failing.sum().cast(pl.Int64).alias("failing"),
        pl.col("symbol").filter(failing).alias("failing_symbols"),
        pl.col("reason_codes").filter(failing).explode().alias("failing_codes"),
    )
    # every session of the chunk has a row, even when all its rows were excluded (N = 0)
    days = quality.select("date").unique()
    return days.join(out, on="date", how="left").with_columns(
        pl.col("symbols").fill_null(0),
        pl.col("failing").fill_null(0),
        pl.col("failing_symbols").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        pl.col("failing_codes").fill_null(pl.lit([], dtype=pl.List(pl.String))),
    ).select(list(TALLY_SCHEMA)).cast(TALLY_SCHEMA).sort("date")


def session_health(tallies: Iterable[pl.DataFrame], max_failing_share: float) -> pl.DataFrame:
    """One row per session (SESSION_SCHEMA, sorted by date) from the chunks' tallies: failing share,
    halted (share > max_failing_share), the most frequent failing codes and some failing symbols."""
    parts = [t for t in tallies if t.height]
    if not parts:
        return pl.DataFrame(schema=SESSION_SCHEMA)
    merged = (
        pl.concat(parts)
        .group_by("date")
        .agg(
            pl.col("symbols").sum(),
            pl.col("failing").sum(),
            pl.col("failing_symbols").explode().sort().head(EXAMPLES).alias("examples"),
            pl.col("failing_codes").explode().alias("codes"),
        )
        .sort("date")
    )
    share = pl.when(pl.col("symbols") > 0).then(pl.col("failing") / pl.col("symbols")).otherwise(0.0)
    top = [_top_codes(c) for c in merged["codes"].to_list()]
    return (
        merged.with_columns(
            share.alias("failing_share"),
            pl.lit(float(max_failing_share)).alias("max_failing_share"),
            pl.Series("top_codes", top, dtype=pl.String),
        )
        .with_columns((pl.col("failing_share") > max_failing_share).alias("halted"))
        .select(list(SESSION_SCHEMA))
        .cast(SESSION_SCHEMA)
    )


def _top_codes(codes: list[str] | None) -> str:
    counts: dict[str, int] = {}
    for c in codes or []:
        counts[c] = counts.get(c, 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CODES]
    return json.dumps(dict(top))


def halted_sessions(health: pl.DataFrame) -> list:
    """The halted sessions' dates, in order."""
    return health.filter(pl.col("halted")).sort("date")["date"].to_list()


def describe(health: pl.DataFrame) -> list[dict]:
    """The halted sessions as plain dicts (check metadata, audit payloads, the CLI's failure paragraph):
    date, failing_share, failing, symbols, limit, top_codes {code: rows}, examples [symbols]."""
    return [
        {
            "date": r["date"].isoformat(),
            "failing_share": round(float(r["failing_share"]), 6),
            "failing": int(r["failing"]),
            "symbols": int(r["symbols"]),
            "limit": float(r["max_failing_share"]),
            "top_codes": json.loads(r["top_codes"] or "{}"),
            "examples": list(r["examples"] or []),
        }
        for r in health.filter(pl.col("halted")).sort("date").iter_rows(named=True)
    ]
