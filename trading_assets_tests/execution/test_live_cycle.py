"""A live cycle through `trading-cycle --live` against the loopback Alpaca replay server (no internet).

One paper backfill (the synthetic market, 5 names, 2024), then the live session T (a session of the
window with orders) again and again: orders submitted once even when the submission is retried and
when the session is rerun; a reconciliation difference stops the run before anything is sent or
written; --dry-run sends nothing; --live needs --confirm-live and the keys; the keys show nowhere.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from trading_assets import cli
from trading_assets.defs import live as live_mod
from trading_assets.domain import brokerage as bk
from trading_assets.domain import calendar
from trading_assets.store.warehouse import Warehouse
from trading_assets_tests.execution.alpaca_replay import Fault, ReplayAlpaca

KEY, SECRET = "PKLIVETEST0001", "live-secret-never-printed"
START, END = date(2024, 1, 2), date(2024, 12, 31)
# the --test market, one session: --test itself means a year's window (a live run is one session)
LIVE_ARGS = ["--source", "synthetic", "--symbols", ",".join(cli.TEST_SYMBOLS)]


@pytest.fixture(scope="module")
def paper_history(tmp_path_factory):
    """A paper backfill of the --test market over 2024, in its own data folder (module scoped)."""
    root = tmp_path_factory.mktemp("live")
    mp = pytest.MonkeyPatch()
    for k in [k for k in __import__("os").environ if k.startswith(("TRADING_", "DAGSTER_", "APCA_"))]:
        mp.delenv(k)
    mp.setenv("TRADING_DATA_DIR", str(root / "data"))
    mp.setenv("DAGSTER_HOME", str(root / "data" / "dagster_home"))
    assert cli.main(["--test", "--start", START.isoformat(), "--end", END.isoformat()]) == 0
    wh = Warehouse(root / "data" / "trading.duckdb", root / "data" / "audit")
    # the live session: a late session of the window with orders and no corporate action
    acts = set(wh.read("SELECT DISTINCT date FROM corporate_actions")["date"].to_list())
    with_orders = wh.read("SELECT date, count(*) AS n FROM orders GROUP BY date HAVING n >= 2 ORDER BY date DESC")
    t = next(d for d in with_orders["date"].to_list() if d not in acts and calendar.previous_session(d) not in acts)
    yield wh, t, root
    mp.undo()


def _account_at(wh: Warehouse, day: date) -> tuple[dict, float]:
    pos = wh.read("SELECT symbol, quantity, avg_cost FROM positions WHERE date = ?", [day])
    cash = wh.read("SELECT cash FROM portfolio WHERE date = ?", [day])["cash"][0]
    return {s: (q, a) for s, q, a in pos.iter_rows()}, float(cash)


def _env(mp, root) -> None:
    """The test's environment (conftest clears TRADING_* before each test)."""
    mp.setenv("TRADING_DATA_DIR", str(root / "data"))
    mp.setenv("DAGSTER_HOME", str(root / "data" / "dagster_home"))
    mp.setenv("TRADING_HISTORY_START", START.isoformat())  # the live runs continue the same history


def _live(mp, replay, *args):
    mp.setenv("TRADING_BROKER", "alpaca")
    mp.setenv("TRADING_BROKER_URL", replay.url)
    mp.setenv("APCA_API_KEY_ID", KEY)
    mp.setenv("APCA_API_SECRET_KEY", SECRET)
    return cli.main([*LIVE_ARGS, "--live", *args])


def test_live_cycle_against_the_replay_server(paper_history, capsys, monkeypatch):
    wh, t, root = paper_history
    mp = monkeypatch
    _env(mp, root)
    prev = calendar.previous_session(t)
    positions, cash = _account_at(wh, prev)
    monkeypatch.setattr(live_mod, "now", lambda: datetime(2024, 6, 3, 19, 30, tzinfo=bk.NEW_YORK))
    with ReplayAlpaca(cash=cash, positions=dict(positions)) as replay:
        # --live without --confirm-live (or without keys) is refused before anything runs
        mp.setenv("TRADING_BROKER", "alpaca")
        mp.setenv("TRADING_BROKER_URL", replay.url)
        assert cli.main([*LIVE_ARGS, "--live", "--date", t.isoformat()]) == cli.EXIT_USAGE
        assert "keys are missing" in capsys.readouterr().err
        assert _live(mp, replay, "--date", t.isoformat()) == cli.EXIT_USAGE
        assert "--confirm-live" in capsys.readouterr().err and replay.requests == []

        # --dry-run: the orders are printed and audited, nothing is sent
        assert _live(mp, replay, "--dry-run", "--date", t.isoformat()) == 0
        err = capsys.readouterr().err
        assert "would send:" in err and replay.posts() == []
        n_orders = err.count("would send:")
        assert n_orders >= 2

        # the live session: the first POST is created but answered 500, then a 429: retried, never doubled
        replay.fail_next("POST", "/v2/orders", Fault(500, {"message": "internal"}, create_first=True),
                         Fault(429, {"message": "too many requests"}, {"Retry-After": "0"}))
        assert _live(mp, replay, "--confirm-live", "--date", t.isoformat()) == 0
        out = capsys.readouterr()
        live_orders = wh.read("SELECT order_id, symbol, side, quantity, mode FROM orders WHERE date = ? ORDER BY symbol", [t])
        assert (live_orders["mode"] == "live").all() and live_orders.height == n_orders
        assert sorted(replay.created()) == sorted(live_orders["order_id"].to_list())  # each exactly once
        sent = {o["client_order_id"]: o for o in replay.orders.values()}
        for oid, sym, side, qty, _ in live_orders.iter_rows():
            assert (sent[oid]["symbol"], sent[oid]["side"], float(sent[oid]["qty"]), sent[oid]["time_in_force"]) == \
                (sym, side.lower(), qty, "opg")
        events = wh.read("SELECT event_type, payload FROM audit_log WHERE date = ? AND event_type LIKE 'order_%'", [t])
        assert events.filter(pl.col("event_type") == "order_submitted").height == n_orders
        # the keys show nowhere: stdout, stderr, the audit table and its JSONL mirror
        audit_text = "\n".join(events["payload"].to_list()) + "".join(
            p.read_text() for p in Path(wh.audit_dir).glob("*.jsonl"))
        for text in (out.out, out.err, audit_text):
            assert SECRET not in text and KEY not in text

        # a rerun of the session sends the same ids: the broker keeps one order each
        posts_before = len(replay.posts())
        assert _live(mp, replay, "--confirm-live", "--date", t.isoformat()) == 0
        capsys.readouterr()
        assert len(replay.posts()) == posts_before + n_orders and sorted(replay.created()) == sorted(live_orders["order_id"].to_list())

        # the broker holds a position the book does not know: the run stops, listing it; nothing sent or written
        run_ids = wh.read("SELECT DISTINCT run_id FROM orders WHERE date = ?", [t])["run_id"].to_list()
        replay.positions["ZZZ"] = (5.0, 10.0)
        posts_before = len(replay.posts())
        assert _live(mp, replay, "--confirm-live", "--date", t.isoformat()) == cli.EXIT_FAILED
        failed = json.loads(capsys.readouterr().out)
        assert "ZZZ: book 0 vs broker 5 shares" in json.dumps(failed) and "nothing was sent" in json.dumps(failed)
        assert len(replay.posts()) == posts_before
        assert wh.read("SELECT DISTINCT run_id FROM orders WHERE date = ?", [t])["run_id"].to_list() == run_ids
        assert wh.read("SELECT count(*) AS n FROM audit_log WHERE event_type = 'reconciliation_failed'")["n"][0] == 1
