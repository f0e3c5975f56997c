"""AlpacaBroker with alpaca-py's real TradingClient against the loopback replay server (no internet)."""

from __future__ import annotations

import math
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from trading_assets.brokers import get_broker
from trading_assets.brokers.alpaca import AlpacaBroker
from trading_assets.domain import brokerage as bk
from trading_assets.domain import execution as ex
from trading_assets.settings import ExecutionSettings, load_settings
from trading_assets_tests.execution.alpaca_replay import Fault, ReplayAlpaca

KEYS = {"APCA_API_KEY_ID": "PKTESTKEY000", "APCA_API_SECRET_KEY": "secret-must-never-show"}


@pytest.fixture
def replay():
    with ReplayAlpaca() as r:
        yield r


def broker_for(replay, events=None, sleeps=None, attempts=3):
    s = ExecutionSettings(mode="live", broker="alpaca", broker_url=replay.url, retry_attempts=attempts, retry_wait_s=0.5)
    return AlpacaBroker.from_env(s, KEYS, on_event=(lambda t, p: events.append((t, p))) if events is not None else None,
                                 sleep=(sleeps.append if sleeps is not None else (lambda _s: None)))


def test_default_endpoint_is_paper_and_keys_never_show():
    from alpaca.common.enums import BaseURL

    b = AlpacaBroker.from_env(ExecutionSettings(mode="live", broker="alpaca"), KEYS)
    assert b._client._base_url == BaseURL.TRADING_PAPER
    assert "secret" not in repr(b) and "PKTESTKEY" not in repr(b)
    live = load_settings({}).replace(execution=ExecutionSettings(mode="live", broker="alpaca"))
    assert "PKTESTKEY" not in str(live.to_dict()) and "APCA" not in str(live.to_dict())
    with pytest.raises(ex.BrokerNotConfigured, match="keys are missing"):
        get_broker(live, {})
    with pytest.raises(ex.BrokerNotConfigured, match="unknown broker"):
        get_broker(live.replace(execution=ExecutionSettings(mode="live", broker="ibkr")), KEYS)
    assert isinstance(get_broker(live, KEYS), AlpacaBroker)


def test_submit_account_positions_cancel_and_fills(replay):
    events = []
    b = broker_for(replay, events)
    assert b.cash() == 1_000_000.0 and b.positions() == {}
    t = bk.Ticket("a" * 20, "AAPL", ex.BUY, 100)
    o = b.submit(t)
    assert (o.client_order_id, o.symbol, o.side, o.quantity, o.status) == ("a" * 20, "AAPL", "BUY", 100.0, "accepted")
    body = replay.posts()[0]
    assert body == {"symbol": "AAPL", "qty": 100, "side": "buy", "type": "market", "time_in_force": "opg",
                    "client_order_id": "a" * 20}
    b.submit(bk.Ticket("b" * 20, "MSFT", ex.BUY, 10))
    cancelled = b.cancel("b" * 20)
    assert cancelled.status == "canceled"
    replay.open_auction({"AAPL": 101.5, "MSFT": 300.0})
    assert b.positions() == {"AAPL": 100.0} and b.cash() == pytest.approx(1_000_000.0 - 10_150.0)
    polled = b.poll(["a" * 20, "b" * 20, "c" * 20])
    assert polled["a" * 20].filled_quantity == 100 and polled["a" * 20].filled_avg_price == 101.5
    assert polled["c" * 20] is None
    orders = [("a" * 20, date(2024, 3, 1), "AAPL", ex.BUY, 100.0, 100.0, "live", "c"),
              ("b" * 20, date(2024, 3, 1), "MSFT", ex.BUY, 10.0, 299.0, "live", "c"),
              ("c" * 20, date(2024, 3, 1), "XOM", ex.SELL, 5.0, 80.0, "live", "c")]
    rows = b.fill_rows(orders, date(2024, 3, 4), {"AAPL": 101.0, "MSFT": 300.0, "XOM": 80.0}, {})
    a, m, x = rows
    assert a[5:10] == (100.0, 101.5, 0.0, pytest.approx(50.0), ex.FILLED) and a[10] is None
    assert a[15] == pytest.approx((101.5 - 101.0) / 101.0 * 1e4) and a[17] == 1.0 and len(a) == len(ex.FILL_SCHEMA)
    assert m[9] == ex.CANCELLED and "canceled" in m[10] and m[6] is None
    assert x[9] == ex.CANCELLED and "no such order" in x[10]
    assert [e[0] for e in events] == ["order_submitted", "order_submitted", "order_cancelled"]
    # an order the auction did not take is still open when the fills are polled: cancelled, audited, CANCELLED
    b.submit(bk.Ticket("h" * 20, "JNJ", ex.BUY, 3))
    replay.open_auction({"AAPL": 101.5})
    (j,) = b.fill_rows([("h" * 20, date(2024, 3, 1), "JNJ", ex.BUY, 3.0, 150.0, "live", "c")], date(2024, 3, 4),
                       {"JNJ": 150.0}, {})
    assert j[9] == ex.CANCELLED and "canceled" in j[10] and replay.orders["h" * 20]["status"] == "canceled"
    assert [e[0] for e in events][-2:] == ["order_submitted", "order_cancelled"]
    assert "secret" not in str(events) and "PKTEST" not in str(events)


def test_a_retried_submission_never_doubles_the_order(replay):
    sleeps = []
    b = broker_for(replay, sleeps=sleeps)
    # the order is created but the answer is a 500; then a 429 with Retry-After; the broker is asked
    # by client_order_id before every retry and returns the existing order: one order at the broker
    replay.fail_next("POST", "/v2/orders", Fault(500, {"message": "internal server error"}, create_first=True))
    o = b.submit(bk.Ticket("d" * 20, "JPM", ex.BUY, 7))
    assert o.client_order_id == "d" * 20 and replay.created() == ["d" * 20] and len(replay.posts()) == 1
    # a rerun of the session submits the same id again: the duplicate 422 returns the existing order
    again = b.submit(bk.Ticket("d" * 20, "JPM", ex.BUY, 7))
    assert again.broker_order_id == o.broker_order_id and replay.created() == ["d" * 20]
    # rate limit then a 503 before anything is created: retried, waits Retry-After then the backoff
    replay.fail_next("POST", "/v2/orders", Fault(429, {"message": "too many requests"}, {"Retry-After": "2"}),
                     Fault(503, "service unavailable"))
    e = b.submit(bk.Ticket("e" * 20, "XOM", ex.SELL, 3))
    assert e.status == "accepted" and replay.created() == ["d" * 20, "e" * 20]
    assert sleeps == [0.5, 2.0, 1.0]  # the first 500, then Retry-After, then retry_wait_s * 2^1


def test_rejections_are_raised_and_audited_and_5xx_gives_up(replay):
    events = []
    b = broker_for(replay, events, attempts=2)
    with pytest.raises(bk.BrokerRejected, match="insufficient buying power") as exc:
        b.submit(bk.Ticket("f" * 20, "BRK", ex.BUY, 1_000_000))
    assert exc.value.status_code == 403
    with pytest.raises(bk.BrokerRejected, match="qty must be > 0") as exc:
        b.submit(bk.Ticket("g" * 20, "AAPL", ex.BUY, 0))
    assert exc.value.status_code == 422
    assert [(t, p["http_status"]) for t, p in events] == [("order_rejected", 403), ("order_rejected", 422)]
    replay.fail_next("GET", "/v2/account", *[Fault(502, "bad gateway")] * 3)
    with pytest.raises(bk.BrokerUnavailable, match="3 attempts"):
        b.cash()
    assert replay.created() == []


def test_reconcile_lists_every_difference():
    d = bk.reconcile({"A": 10.0, "B": 5.0}, {"A": 10.0, "C": 3.0}, 1000.0, 1200.0, 10_000.0, 0.01)
    assert d == [{"what": "position", "symbol": "B", "book": 5.0, "broker": 0.0},
                 {"what": "position", "symbol": "C", "book": 0.0, "broker": 3.0},
                 {"what": "cash", "symbol": None, "book": 1000.0, "broker": 1200.0}]
    assert bk.reconcile({"A": 1.0}, {"A": 1.0}, 1000.0, 1050.0, 10_000.0, 0.01) == []
    msg = str(bk.ReconciliationError(d))
    assert "B: book 5 vs broker 0 shares" in msg and "cash: book 1000.00 vs broker 1200.00" in msg


def test_opg_window():
    ny = ZoneInfo("America/New_York")
    assert bk.opg_window_open(datetime(2024, 3, 4, 19, 30, tzinfo=ny))
    assert bk.opg_window_open(datetime(2024, 3, 5, 8, 0, tzinfo=ny))
    assert not bk.opg_window_open(datetime(2024, 3, 4, 18, 0, tzinfo=ny))
    assert not bk.opg_window_open(datetime(2024, 3, 4, 9, 28, tzinfo=ny))


def test_tickets_from_orders():
    rows = [("b" * 20, date(2024, 3, 1), "B", ex.SELL, 5.0, 1.0, "live", "c"),
            ("a" * 20, date(2024, 3, 1), "A", ex.BUY, 10.0, 1.0, "live", "c")]
    assert [t.public() for t in bk.tickets_from_orders(rows)] == [
        {"client_order_id": "a" * 20, "symbol": "A", "side": "BUY", "quantity": 10, "time_in_force": "opg",
         "order_type": "market"},
        {"client_order_id": "b" * 20, "symbol": "B", "side": "SELL", "quantity": 5, "time_in_force": "opg",
         "order_type": "market"}]
    with pytest.raises(ValueError):
        bk.tickets_from_orders([("x", date(2024, 3, 1), "A", ex.BUY, 1.5, 1.0, "live", "c")])
