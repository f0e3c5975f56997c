"""data_quality assesses chunks of symbols (defs/quality.py): the rows equal one pass, bit for bit.

assess_quality on each chunk of `symbol_chunks`, with the calendar from the first bar of ALL symbols,
concatenated and sorted, equals assess_quality on every symbol at once; on a synthetic market with
every kind of injected defect (a late start among them: LATE_START depends on the calendar's start)
and an unserved symbol.
"""

from __future__ import annotations

from datetime import date

import polars as pl
from polars.testing import assert_frame_equal

from trading_assets.defs.quality import symbol_chunks
from trading_assets.domain import calendar
from trading_assets.domain.quality import assess_quality
from trading_assets.providers.router import DataRouter
from trading_assets.providers.synthetic import Defect, SyntheticProvider
from trading_assets.settings import QualitySettings

READ_FROM, START, END = date(2023, 10, 2), date(2024, 1, 2), date(2024, 6, 28)
SYMBOLS = sorted([f"S{i:02d}" for i in range(12)] + ["SPY"])
S = calendar.sessions(START, END)
DEFECTS = [
    Defect("gap", "S01", S[10]),
    Defect("high_below_low", "S02", S[11]),
    Defect("open_outside", "S03", S[12]),
    Defect("close_outside", "S04", S[13]),
    Defect("spike", "S05", S[20], magnitude=0.6),
    Defect("stale", "S06", S[30], sessions=6),
    Defect("unadjusted_split", "S07", S[40], ratio=3.0),
    Defect("null_field", "S08", S[50], field="volume"),
    Defect("zero_volume", "S09", S[51]),
    Defect("duplicate", "S10", S[52]),
    Defect("late_start", "S11", S[5]),
]


def test_symbol_chunks_cover_every_symbol_once():
    for n_sessions, bars in ((100, 250), (100, 1), (0, 10), (1, 10**9)):
        chunks = symbol_chunks(SYMBOLS, n_sessions, bars)
        assert [s for c in chunks for s in c] == SYMBOLS and all(chunks)
    assert len(symbol_chunks(SYMBOLS, 100, 250)) == 7  # 2 symbols per chunk


def test_quality_in_symbol_chunks_equals_one_pass():
    provider = SyntheticProvider(11, defects=DEFECTS)
    routed = DataRouter([provider], seed=11).route([s for s in SYMBOLS if s != "S00"], READ_FROM, END)  # S00: unserved
    bars, actions = routed.bars, routed.actions
    cal = calendar.sessions(min(bars["date"].min(), START), END)
    settings = QualitySettings()
    kw = dict(sessions=cal, window_start=START, window_end=END, settings=settings, unserved=["S00"])
    whole = assess_quality(bars, actions, symbols=SYMBOLS, **kw)
    for per_chunk in (1, 2, 5):
        parts = [
            assess_quality(
                bars.filter(pl.col("symbol").is_in(chunk)), actions.filter(pl.col("symbol").is_in(chunk)), symbols=chunk, **kw
            )
            for chunk in symbol_chunks(SYMBOLS, len(cal), per_chunk * len(cal))
        ]
        assert_frame_equal(pl.concat(parts).sort("date", "symbol"), whole, check_exact=True)
    codes = set(whole.explode("reason_codes")["reason_codes"].drop_nulls())
    assert {"LATE_START", "NO_PROVIDER", "REVERSED_SPIKE", "STALE_PRICE", "UNADJUSTED_SPLIT", "DUPLICATE_ROW"} <= codes
