"""The bandit router: per-symbol fallback on every failure kind, duplicate counting, metrics, the
bandit's learning and determinism, and the round trip into the warehouse tables."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta

import polars as pl
import pytest

from trading_assets.providers.base import (
    BAR_SCHEMA,
    EMPTY_RESPONSE,
    MALFORMED_RESPONSE,
    NETWORK_ERROR,
    PARTIAL_COVERAGE,
    RATE_LIMITED,
    TIMEOUT,
    UNEXPECTED_ERROR,
    FetchResult,
    ProviderError,
    empty_actions,
    empty_bars,
)
from trading_assets.providers.router import (
    METRICS_SCHEMA,
    ROUTED_ACTION_SCHEMA,
    ROUTED_BAR_SCHEMA,
    DataRouter,
    arm_stats,
)
from trading_assets.providers.synthetic import SyntheticProvider
from trading_assets.store.warehouse import SCHEMA_DIR

START, END = date(2024, 3, 1), date(2024, 3, 8)
DAYS = [date(2024, 3, d) for d in (1, 4, 5, 6, 7, 8)]


def _bars(symbols, days=DAYS, price=100.0) -> pl.DataFrame:
    rows = [
        {"date": d, "symbol": s, "open": price, "high": price + 1, "low": price - 1, "close": price + 0.5, "adj_close": price + 0.5, "volume": 1e6}
        for d in days
        for s in symbols
    ]
    return pl.DataFrame(rows, schema=BAR_SCHEMA) if rows else empty_bars()


class Fake:
    """A provider whose answer is a function of the symbols it is asked for."""

    def __init__(self, name, answer, is_synthetic=False):
        self.name = name
        self.is_synthetic = is_synthetic
        self.answer = answer
        self.calls: list[list[str]] = []

    def fetch(self, symbols, start, end):
        self.calls.append(list(symbols))
        out = self.answer(list(symbols))
        if isinstance(out, BaseException):
            raise out
        return out


def serves(name, only=None, price=100.0, actions=None):
    def answer(symbols):
        got = [s for s in symbols if only is None or s in only]
        acts = actions.filter(pl.col("symbol").is_in(symbols)) if actions is not None else empty_actions()
        return FetchResult(name, _bars(got, price=price), acts, missing=tuple(s for s in symbols if s not in got))

    return Fake(name, answer)


def raises(name, exc):
    return Fake(name, lambda symbols: exc)


def _router(*providers, history=None, seed=1):
    return DataRouter(list(providers), seed=seed, metrics_history=history)


def _history(rows: list[tuple[str, bool, int, int]]) -> pl.DataFrame:
    """provider_metrics rows: (provider, success, requested, served)."""
    base = datetime(2024, 1, 1)
    return pl.DataFrame(
        [
            {
                "ts": base + timedelta(minutes=i),
                "provider": p,
                "window_start": date(2024, 1, 2),
                "window_end": date(2024, 1, 2),
                "symbols_requested": req,
                "symbols_served": srv,
                "rows": srv,
                "success": ok,
                "failure_reason": None if ok else NETWORK_ERROR,
                "latency_ms": 100.0,
                "quality": 1.0 if ok else None,
            }
            for i, (p, ok, req, srv) in enumerate(rows)
        ]
    )


FIX_ORDER = _history([("A", True, 10, 10)] * 60 + [("B", False, 10, 0)] * 60)  # A first, B second


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (raises("A", OSError("curl: (6) Could not resolve host")), NETWORK_ERROR),
        (raises("A", TimeoutError("read timed out")), TIMEOUT),
        (raises("A", ProviderError("A", RATE_LIMITED, "HTTP 429")), RATE_LIMITED),
        (raises("A", ProviderError("A", EMPTY_RESPONSE, "empty frame")), EMPTY_RESPONSE),
        (raises("A", RuntimeError("bug")), UNEXPECTED_ERROR),
        (Fake("A", lambda s: FetchResult("A", empty_bars(), missing=tuple(s))), EMPTY_RESPONSE),
        (Fake("A", lambda s: FetchResult("A", _bars(s).drop("close"))), MALFORMED_RESPONSE),
    ],
    ids=["oserror", "timeout", "429", "empty-error", "bug", "empty-frame", "partial-columns"],
)
def test_first_provider_failing_falls_back_for_every_symbol(first, reason):
    second = serves("B")
    r = _router(first, second, history=FIX_ORDER).route(["MSFT", "AAPL"], START, END)
    assert r.order == ("A", "B")
    assert r.unserved == ()
    assert set(r.bars["provider"]) == {"B"} and r.bars.height == 12
    assert second.calls == [["MSFT", "AAPL"]]
    m = r.metrics.to_dicts()
    assert [(x["provider"], x["success"], x["failure_reason"]) for x in m] == [("A", False, reason), ("B", True, None)]
    assert m[0]["symbols_served"] == 0 and m[1]["symbols_served"] == 2 and m[1]["rows"] == 12
    assert r.failures == {"AAPL": (("A", reason),), "MSFT": (("A", reason),)}


def test_per_symbol_fallback_for_a_provider_serving_a_few():
    a = serves("A", only={"AAPL"}, price=50.0)
    b = serves("B", price=100.0)
    r = _router(a, b, history=FIX_ORDER).route(["AAPL", "MSFT", "XOM"], START, END)
    assert b.calls == [["MSFT", "XOM"]]  # only what A did not serve
    by = dict(r.bars.group_by("symbol").agg(pl.col("provider").first()).iter_rows())
    assert by == {"AAPL": "A", "MSFT": "B", "XOM": "B"}
    assert r.bars.filter(pl.col("symbol") == "AAPL")["open"].unique().to_list() == [50.0]
    m = r.metrics.to_dicts()
    assert (m[0]["success"], m[0]["failure_reason"], m[0]["symbols_requested"], m[0]["symbols_served"]) == (True, PARTIAL_COVERAGE, 3, 1)
    assert (m[1]["symbols_requested"], m[1]["symbols_served"], m[1]["failure_reason"]) == (2, 2, None)


def test_nan_only_rows_and_null_columns_fail_those_symbols_only():
    def answer(symbols):
        b = _bars(symbols)
        nan_row = (pl.col("symbol") == "AAPL") & (pl.col("date") == date(2024, 3, 5))
        b = b.with_columns([pl.when(nan_row).then(float("nan")).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close")])
        # MSFT: the close column never filled (a partial-column answer for that symbol)
        b = b.with_columns(pl.when(pl.col("symbol") == "MSFT").then(None).otherwise(pl.col("close")).alias("close"))
        # XOM: one real bar with a null open - a quality flag, not a transport failure
        one = (pl.col("symbol") == "XOM") & (pl.col("date") == date(2024, 3, 6))
        return FetchResult("A", b.with_columns(pl.when(one).then(None).otherwise(pl.col("open")).alias("open")))

    a, b = Fake("A", answer), serves("B", price=7.0)
    r = _router(a, b, history=FIX_ORDER).route(["AAPL", "MSFT", "XOM"], START, END)
    assert b.calls == [["AAPL", "MSFT"]]
    by = dict(r.bars.group_by("symbol").agg(pl.col("provider").first()).iter_rows())
    assert by == {"AAPL": "B", "MSFT": "B", "XOM": "A"}
    assert r.bars.filter(pl.col("symbol") == "XOM")["open"].null_count() == 1  # kept as delivered
    assert r.failures["AAPL"] == (("A", MALFORMED_RESPONSE),) and r.failures["MSFT"] == (("A", MALFORMED_RESPONSE),)
    # quality of A's served rows: XOM 6 rows, 1 with a null open -> 5/6
    assert r.metrics["quality"].to_list() == [pytest.approx(5 / 6), 1.0]


def test_unserved_symbols_are_listed_and_duplicates_counted():
    def answer(symbols):
        b = _bars([s for s in symbols if s != "GONE"])
        first = b.filter((pl.col("symbol") == "AAPL") & (pl.col("date") == date(2024, 3, 4)))
        second = first.with_columns(pl.lit(999.0).alias("close"))
        return FetchResult("A", pl.concat([b, second, second]), missing=("GONE",))

    r = _router(Fake("A", answer), raises("B", OSError("down")), history=FIX_ORDER).route(["AAPL", "GONE"], START, END)
    assert r.unserved == ("GONE",)
    assert r.failures["GONE"] == (("A", PARTIAL_COVERAGE), ("B", NETWORK_ERROR))
    dup = r.bars.filter((pl.col("symbol") == "AAPL") & (pl.col("date") == date(2024, 3, 4))).row(0, named=True)
    assert dup["duplicate_count"] == 2 and dup["close"] == 100.5  # the first copy is kept
    assert r.bars.height == 6 and r.bars["duplicate_count"].sum() == 2
    assert r.metrics["rows"].to_list() == [8, 0]  # rows as delivered (duplicates included), then B's failure


def test_output_contract_and_labels():
    acts = pl.DataFrame(
        [{"date": date(2024, 3, 5), "symbol": "AAPL", "action": "dividend", "value": 0.24, "price_factor": 0.998}],
        schema={k: v for k, v in ROUTED_ACTION_SCHEMA.items() if k != "provider"},
    )
    syn = SyntheticProvider(3)
    r = _router(serves("A", only={"AAPL"}, actions=acts), syn, history=FIX_ORDER.vstack(
        _history([("synthetic", False, 10, 0)] * 60))).route(["MSFT", "AAPL"], START, END)
    assert dict(r.bars.schema) == ROUTED_BAR_SCHEMA and dict(r.actions.schema) == ROUTED_ACTION_SCHEMA
    assert dict(r.metrics.schema) == METRICS_SCHEMA
    assert r.bars.equals(r.bars.sort(["date", "symbol"]))
    labels = dict(r.bars.group_by("symbol").agg(pl.col("provider").first(), pl.col("is_synthetic").first()).select(
        "symbol", pl.struct("provider", "is_synthetic")).iter_rows())
    assert labels == {"AAPL": {"provider": "A", "is_synthetic": False}, "MSFT": {"provider": "synthetic", "is_synthetic": True}}
    assert r.actions["provider"].to_list() == ["A"] and r.actions["symbol"].to_list() == ["AAPL"]
    # metrics columns = store/schema/14_provider_metrics.sql minus ts, run_id (added by the asset) and
    # unserved (on the asset's summary row only), same order
    sql = (SCHEMA_DIR / "14_provider_metrics.sql").read_text()
    cols = re.findall(r"^\s{4}(\w+)\s+[A-Z]", sql, flags=re.M)
    assert [c for c in cols if c not in ("ts", "run_id", "unserved")] == list(METRICS_SCHEMA)


def test_synthetic_is_never_mixed_in_unless_configured():
    r = _router(raises("A", OSError("down"))).route(["AAPL"], START, END)
    assert r.unserved == ("AAPL",) and r.bars.height == 0 and r.metrics["provider"].to_list() == ["A"]


def test_bandit_learns_from_failures():
    """After a history of A failing and B succeeding, B goes first in most windows (seeded)."""
    history = _history([("A", False, 50, 0)] * 20 + [("B", True, 50, 50)] * 20)
    firsts = Counter()
    for k in range(200):
        day = date(2020, 1, 1) + timedelta(days=k)
        firsts[_router(serves("A"), serves("B"), history=history, seed=7).order(day, day)[0].name] += 1
    assert firsts["B"] >= 190
    # with no history both orders get explored, about half each
    fresh = Counter(
        _router(serves("A"), serves("B"), seed=7).order(date(2020, 1, 1) + timedelta(days=k), date(2020, 1, 1) + timedelta(days=k))[0].name
        for k in range(200)
    )
    assert 60 <= fresh["A"] <= 140 and 60 <= fresh["B"] <= 140


def test_bandit_statistics_quality_latency_and_partial_credit():
    h = _history([("A", True, 10, 5), ("A", False, 10, 0), ("B", True, 4, 4)])
    h = h.with_columns(
        pl.when(pl.col("provider") == "B").then(3000.0).otherwise(pl.col("latency_ms")).alias("latency_ms"),
        pl.when(pl.col("provider") == "B").then(0.5).otherwise(pl.col("quality")).alias("quality"),
    )
    a, b, c = arm_stats(h, ["A", "B", "C"])
    assert (a.successes, a.failures, a.quality, a.latency_s) == (0.5, 1.5, 1.0, 0.1)
    assert (b.successes, b.failures, b.quality, b.latency_s) == (1.0, 0.0, 0.5, 3.0)
    assert (c.successes, c.failures, c.quality, c.latency_s) == (0.0, 0.0, 1.0, 0.0)
    # the window keeps only the last attempts of each provider
    recent = arm_stats(_history([("A", False, 1, 0)] * 5 + [("A", True, 1, 1)] * 3), ["A"], window=3)[0]
    assert (recent.successes, recent.failures) == (3.0, 0.0)
    # a slow provider loses to an equally reliable fast one when latency is costly
    even = _history([("A", True, 10, 10)] * 30 + [("B", True, 10, 10)] * 30).with_columns(
        pl.when(pl.col("provider") == "A").then(20_000.0).otherwise(10.0).alias("latency_ms")
    )
    orders = [DataRouter([serves("A"), serves("B")], 7, even, latency_cost_per_s=0.05).order(START, END)[0].name for _ in range(3)]
    assert orders == ["B"] * 3


def test_order_is_deterministic_given_seed_window_and_history():
    history = _history([("A", True, 10, 7), ("B", False, 10, 0), ("C", True, 10, 10)] * 3)
    make = lambda seed: DataRouter([serves("A"), serves("B"), serves("C")], seed, history)  # noqa: E731
    assert [p.name for p in make(7).order(START, END)] == [p.name for p in make(7).order(START, END)]
    seen = {tuple(p.name for p in make(s).order(START, END)) for s in range(40)}
    assert len(seen) > 1  # the seed matters: it is a sampler, not a fixed ranking
    # same inputs -> identical routed rows (latency_ms aside)
    r1 = make(7).route(["AAPL", "MSFT"], START, END)
    r2 = make(7).route(["AAPL", "MSFT"], START, END)
    assert r1.bars.equals(r2.bars) and r1.actions.equals(r2.actions)
    assert r1.metrics.drop("latency_ms").equals(r2.metrics.drop("latency_ms"))


def test_rows_fit_the_warehouse_tables(warehouse):
    syn = SyntheticProvider(5)
    r = _router(raises("A", OSError("down")), syn, history=FIX_ORDER.vstack(_history([("synthetic", True, 1, 1)]))).route(
        ["AAPL", "KO", "SPY"], date(2023, 1, 3), date(2023, 12, 29)
    )
    assert r.actions.height > 0
    warehouse.replace_window("price_history", r.bars, date(2023, 1, 3), date(2023, 12, 29))
    warehouse.replace_window("corporate_actions", r.actions, date(2023, 1, 3), date(2023, 12, 29))
    warehouse.append("provider_metrics", r.metrics.with_columns(pl.lit(datetime(2024, 1, 1)).alias("ts")))
    back = warehouse.read("SELECT * FROM price_history ORDER BY date, symbol")
    assert back.height == r.bars.height and back["provider"].unique().to_list() == ["synthetic"]
    assert back["is_synthetic"].all()
    hist = warehouse.read("SELECT * FROM provider_metrics")
    # the stored metrics feed the next router
    stats = {s.provider: s for s in arm_stats(hist, ["A", "synthetic"])}
    assert stats["A"].failures == 1.0 and stats["synthetic"].successes == 1.0
