"""A local Alpaca trading API on loopback for the tests: alpaca-py's real TradingClient talks to it.

It answers /v2/account, /v2/orders (POST, GET by client_order_id, DELETE by id), /v2/positions with
the JSON shapes of Alpaca's REST API (docs.alpaca.markets, Trading API v2), keeps an account (cash,
positions, orders) in memory, and replays Alpaca's errors:
- 403 {"code": 40310000, "message": "insufficient buying power"} when a buy costs more than the cash;
- 422 {"code": 40010001, "message": "qty must be > 0"} (and for a fractional OPG quantity);
- 422 {"code": 40010001, "message": "client_order_id must be unique"} for a duplicate id;
- scripted faults (`fail_next`): 429 with Retry-After, 5xx, and "created but answered 500" (the order
  exists, the client saw an error: the case an idempotent retry must get right).
`open_auction(prices)` plays the next open: every open OPG order fills at the symbol's price.
Nothing listens beyond 127.0.0.1; every request is recorded in `requests`.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def _now() -> str:
    return datetime(2024, 3, 4, 23, 5, tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Fault:
    status: int
    body: dict | str
    headers: dict = field(default_factory=dict)
    create_first: bool = False  # handle the request (create the order), then answer with this error


@dataclass
class ReplayAlpaca:
    cash: float = 1_000_000.0
    positions: dict = field(default_factory=dict)  # symbol -> (qty, avg_entry_price)
    orders: dict = field(default_factory=dict)  # client_order_id -> order JSON
    requests: list = field(default_factory=list)
    faults: dict = field(default_factory=dict)  # (method, path) -> [Fault, ...]
    last_prices: dict = field(default_factory=dict)  # symbol -> price the buying-power check uses

    def __post_init__(self):
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, method: str, path: str, *faults: Fault) -> None:
        self.faults.setdefault((method, path), []).extend(faults)

    def posts(self) -> list[dict]:
        return [b for m, p, b in self.requests if m == "POST" and p == "/v2/orders"]

    def created(self) -> list[str]:
        return list(self.orders)

    # --- the exchange -----------------------------------------------------------------------------
    def open_auction(self, prices: dict[str, float]) -> None:
        with self.lock:
            for o in self.orders.values():
                if o["status"] not in ("new", "accepted") or o["symbol"] not in prices:
                    continue
                px, q = prices[o["symbol"]], float(o["qty"])
                sign = 1 if o["side"] == "buy" else -1
                held, avg = self.positions.get(o["symbol"], (0.0, 0.0))
                new = held + sign * q
                if sign > 0:
                    avg = (held * avg + q * px) / new if new else 0.0
                self.positions[o["symbol"]] = (new, avg)
                if new == 0:
                    del self.positions[o["symbol"]]
                self.cash -= sign * q * px
                o.update(status="filled", filled_qty=o["qty"], filled_avg_price=str(px), filled_at=_now())

    def order_json(self, body: dict) -> dict:
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_OID, body["client_order_id"])),
            "client_order_id": body["client_order_id"], "created_at": _now(), "updated_at": _now(),
            "submitted_at": _now(), "filled_at": None, "expired_at": None, "canceled_at": None, "failed_at": None,
            "replaced_at": None, "replaced_by": None, "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, body["symbol"])), "symbol": body["symbol"],
            "asset_class": "us_equity", "notional": None, "qty": str(body["qty"]), "filled_qty": "0",
            "filled_avg_price": None, "order_class": "", "order_type": body["type"], "type": body["type"],
            "side": body["side"], "time_in_force": body["time_in_force"], "limit_price": None, "stop_price": None,
            "status": "accepted", "extended_hours": False, "legs": None, "trail_percent": None, "trail_price": None,
            "hwm": None,
        }

    def position_json(self, sym: str, qty: float, avg: float) -> dict:
        px = self.last_prices.get(sym, avg)
        return {"asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, sym)), "symbol": sym, "exchange": "NASDAQ",
                "asset_class": "us_equity", "avg_entry_price": str(avg), "qty": str(qty), "qty_available": str(qty),
                "side": "long" if qty >= 0 else "short", "market_value": str(qty * px),
                "cost_basis": str(qty * avg), "unrealized_pl": str(qty * (px - avg)), "unrealized_plpc": "0",
                "unrealized_intraday_pl": "0", "unrealized_intraday_plpc": "0", "current_price": str(px),
                "lastday_price": str(px), "change_today": "0"}

    def account_json(self) -> dict:
        equity = self.cash + sum(q * self.last_prices.get(s, a) for s, (q, a) in self.positions.items())
        return {"id": "8f6c2d1e-0000-4000-8000-000000000001", "account_number": "PA0000REPLAY", "status": "ACTIVE",
                "crypto_status": "ACTIVE", "currency": "USD", "cash": str(self.cash), "buying_power": str(self.cash),
                "regt_buying_power": str(self.cash), "daytrading_buying_power": "0", "non_marginable_buying_power":
                str(self.cash), "equity": str(equity), "last_equity": str(equity), "portfolio_value": str(equity),
                "pattern_day_trader": False, "trading_blocked": False, "transfers_blocked": False,
                "account_blocked": False, "created_at": _now(), "trade_suspended_by_user": False, "multiplier": "1",
                "shorting_enabled": False, "long_market_value": "0", "short_market_value": "0",
                "initial_margin": "0", "maintenance_margin": "0", "last_maintenance_margin": "0", "sma": "0",
                "daytrade_count": 0}

    def handle(self, method: str, path: str, query: dict, body: dict | None) -> tuple[int, object, dict]:
        if method == "GET" and path == "/v2/account":
            return 200, self.account_json(), {}
        if method == "GET" and path == "/v2/positions":
            return 200, [self.position_json(s, q, a) for s, (q, a) in sorted(self.positions.items())], {}
        if method == "GET" and path == "/v2/orders:by_client_order_id":
            o = self.orders.get(query.get("client_order_id", [""])[0])
            return (200, o, {}) if o else (404, {"code": 40410000, "message": "order not found"}, {})
        if method == "POST" and path == "/v2/orders":
            cid = body.get("client_order_id")
            if cid in self.orders:
                return 422, {"code": 40010001, "message": "client_order_id must be unique"}, {}
            try:
                q = float(body.get("qty"))
            except (TypeError, ValueError):
                q = 0.0
            if q <= 0 or (body.get("time_in_force") == "opg" and not q.is_integer()):
                return 422, {"code": 40010001, "message": "qty must be > 0" if q <= 0 else
                             "fractional orders must be DAY orders"}, {}
            px = self.last_prices.get(body["symbol"], 100.0)
            if body["side"] == "buy" and q * px > self.cash:
                return 403, {"code": 40310000, "message": "insufficient buying power",
                             "buying_power": str(self.cash), "cost_basis": str(q * px)}, {}
            o = self.order_json(body)
            self.orders[cid] = o
            return 200, o, {}
        if method == "DELETE" and path.startswith("/v2/orders/"):
            oid = path.rsplit("/", 1)[1]
            for o in self.orders.values():
                if o["id"] == oid:
                    if o["status"] in ("filled", "canceled"):
                        return 422, {"code": 42210000, "message": f"order is already in \"{o['status']}\" state"}, {}
                    o.update(status="canceled", canceled_at=_now())
                    return 204, None, {}
            return 404, {"code": 40410000, "message": "order not found"}, {}
        return 404, {"code": 40410000, "message": f"no route {method} {path}"}, {}


def _handler(state: ReplayAlpaca):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _serve(self, method: str):
            u = urlparse(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n)) if n else None
            with state.lock:
                state.requests.append((method, u.path, body))
                if not self.headers.get("APCA-API-KEY-ID") or not self.headers.get("APCA-API-SECRET-KEY"):
                    status, payload, headers = 401, {"code": 40110000, "message": "request is not authorized"}, {}
                else:
                    queue = state.faults.get((method, u.path)) or []
                    fault = queue.pop(0) if queue else None
                    if fault is not None and fault.create_first:
                        state.handle(method, u.path, parse_qs(u.query), body)
                    if fault is not None:
                        status, payload, headers = fault.status, fault.body, fault.headers
                    else:
                        status, payload, headers = state.handle(method, u.path, parse_qs(u.query), body)
            data = b"" if payload is None else (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_DELETE(self):
            self._serve("DELETE")

    return Handler
