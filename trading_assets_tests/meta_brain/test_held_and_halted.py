"""The Meta-Brain's two data-fault REJECTs (#16): a halted session rejects every symbol
(SYSTEMIC_DATA_FAULT), a held extreme move rejects its symbol (UNCONFIRMED_MOVE); other sessions and
symbols are decided exactly as without them, and the cross-section statistics leave the rejected
rows out."""

from __future__ import annotations

from datetime import date

import polars as pl

from trading_assets.domain import meta_brain as mb
from trading_assets.domain import reasons as rc
from trading_assets.settings import MetaBrainSettings
from trading_assets_tests.meta_brain.test_meta_brain import outputs

D1, D2 = date(2024, 3, 1), date(2024, 3, 4)
M = MetaBrainSettings()
ROWS = [("A", "m1", 6e-4, 0.02, 1.0), ("B", "m1", 3e-4, 0.01, 0.5), ("C", "m1", -4e-4, 0.02, 0.8), ("D", "m1", 2e-4, 0.02, 1.0)]
OUT = pl.concat([outputs(ROWS, D1), outputs(ROWS, D2)])


def _quality(codes: dict[tuple[date, str], list[str]], failed=()) -> pl.DataFrame:
    keys = [(d, s) for d in (D1, D2) for s in "ABCD"]
    return pl.DataFrame(
        {
            "date": [d for d, _ in keys],
            "symbol": [s for _, s in keys],
            "passed": [(d, s) not in failed for d, s in keys],
            "reason_codes": [codes.get((d, s), []) for d, s in keys],
        },
        schema={"date": pl.Date, "symbol": pl.String, "passed": pl.Boolean, "reason_codes": pl.List(pl.String)},
    )


def test_a_halted_session_rejects_every_symbol_and_leaves_the_other_session_alone():
    q = _quality({}, failed={(D2, "A")})
    plain = mb.decide(OUT, q, M)
    halted = mb.decide(OUT, q, M, halted_sessions=[D2])
    d2 = halted.filter(pl.col("date") == D2)
    assert d2["pre_risk_decision"].to_list() == [rc.REJECT] * 4
    assert all(rc.SYSTEMIC_DATA_FAULT in c for c in d2["reason_codes"].to_list())
    # A also failed on its own: both reasons; nothing was estimated for any of them
    assert d2.filter(pl.col("symbol") == "A")["reason_codes"].to_list() == [[rc.DATA_QUALITY, rc.SYSTEMIC_DATA_FAULT]]
    assert d2.select(mb.VALUE_COLUMNS).null_count().sum_horizontal().item() == 4 * len(mb.VALUE_COLUMNS)
    assert not any(rc.NO_SIGNAL in c for c in d2["reason_codes"].to_list())
    assert halted.filter(pl.col("date") == D1).equals(plain.filter(pl.col("date") == D1))
    assert mb.nonfinite_rows(halted).height == 0  # the blocking finite check stays green


def test_a_held_move_rejects_its_symbol_only_and_drops_out_of_the_cross_section():
    held = mb.decide(OUT, _quality({(D1, "B"): ["LARGE_MOVE", "MOVE_UNCONFIRMED"]}), M)
    b = held.filter((pl.col("date") == D1) & (pl.col("symbol") == "B")).row(0, named=True)
    assert b["pre_risk_decision"] == rc.REJECT and b["reason_codes"] == [rc.UNCONFIRMED_MOVE] and b["mu_hat"] is None
    # the others of D1 are decided as if B had failed quality (the same cross-section without B)
    without_b = mb.decide(OUT, _quality({}, failed={(D1, "B")}), M)
    others = pl.col("symbol") != "B"
    assert held.filter(others).equals(without_b.filter(others))
    # a confirmed move or an inferred action is tradable again
    for code in ("MOVE_CONFIRMED", "LEVEL_SHIFT_INFERRED", "LARGE_MOVE"):
        again = mb.decide(OUT, _quality({(D1, "B"): [code]}), M)
        assert again.equals(mb.decide(OUT, _quality({}), M)), code


def test_quality_without_reason_codes_still_works():
    q = _quality({}).drop("reason_codes")
    assert mb.decide(OUT, q, M).equals(mb.decide(OUT, _quality({}), M))
