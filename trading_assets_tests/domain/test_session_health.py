"""Which sessions are halted (domain/session_health.py): counts by hand, chunks that add up, the
benchmark and NOT_LISTED rows left out, the limit strict."""

from __future__ import annotations

import json
from datetime import date

import polars as pl

from trading_assets.domain import session_health as sh

D1, D2, D3 = date(2024, 3, 1), date(2024, 3, 4), date(2024, 3, 5)


def _q(rows) -> pl.DataFrame:
    """rows: (date, symbol, passed, codes)."""
    return pl.DataFrame(rows, schema={"date": pl.Date, "symbol": pl.String, "passed": pl.Boolean, "reason_codes": pl.List(pl.String)}, orient="row")


Q = _q(
    [
        (D1, "A", True, []), (D1, "B", False, ["MISSING_BAR"]), (D1, "C", True, []), (D1, "D", True, []), (D1, "SPY", False, ["MISSING_FIELD"]),
        (D2, "A", False, ["MISSING_FIELD", "ZERO_VOLUME"]), (D2, "B", False, ["MISSING_FIELD"]), (D2, "C", True, []),
        (D2, "D", False, ["NOT_LISTED"]), (D2, "SPY", True, []),
        (D3, "A", False, ["NOT_LISTED"]), (D3, "B", False, ["NOT_LISTED"]), (D3, "SPY", True, []),
    ]
)  # fmt: skip


def test_shares_by_hand_and_the_strict_limit():
    h = sh.session_health([sh.session_tallies(Q, ["SPY"])], 0.25)
    assert dict(h.schema) == sh.SESSION_SCHEMA
    rows = {r["date"]: r for r in h.iter_rows(named=True)}
    # D1: 1 of 4 (SPY left out) = 0.25, not above the limit; D2: 2 of 3 (D is NOT_LISTED); D3: nothing tradable
    assert (rows[D1]["failing"], rows[D1]["symbols"], rows[D1]["failing_share"], rows[D1]["halted"]) == (1, 4, 0.25, False)
    assert (rows[D2]["failing"], rows[D2]["symbols"], rows[D2]["halted"]) == (2, 3, True)
    assert rows[D2]["failing_share"] == 2 / 3
    assert (rows[D3]["symbols"], rows[D3]["failing_share"], rows[D3]["halted"]) == (0, 0.0, False)
    assert json.loads(rows[D2]["top_codes"]) == {"MISSING_FIELD": 2, "ZERO_VOLUME": 1}
    assert rows[D2]["examples"] == ["A", "B"]
    assert sh.halted_sessions(h) == [D2]
    [d] = sh.describe(h)
    assert d == {"date": "2024-03-04", "failing_share": round(2 / 3, 6), "failing": 2, "symbols": 3, "limit": 0.25,
                 "top_codes": {"MISSING_FIELD": 2, "ZERO_VOLUME": 1}, "examples": ["A", "B"]}


def test_chunks_of_symbols_add_up_to_one_pass():
    whole = sh.session_health([sh.session_tallies(Q, ["SPY"])], 0.25)
    parts = [sh.session_tallies(Q.filter(pl.col("symbol").is_in(c)), ["SPY"]) for c in (["A", "SPY"], ["B"], ["C", "D"])]
    assert sh.session_health(parts, 0.25).equals(whole)
    assert sh.session_health([], 0.25).height == 0


def test_examples_are_bounded_and_sorted():
    many = _q([(D1, f"S{i:03d}", False, ["MISSING_BAR"]) for i in range(50, 0, -1)])
    [d] = sh.describe(sh.session_health([sh.session_tallies(many)], 0.25))
    assert d["failing"] == 50 and d["examples"] == [f"S{i:03d}" for i in range(1, sh.EXAMPLES + 1)]
