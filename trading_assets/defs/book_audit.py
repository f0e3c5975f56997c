"""The book's audit: every final decision, order and fill appended to audit_log (and data/audit/*.jsonl)."""

from __future__ import annotations

import dataclasses
import json
from datetime import date

import polars as pl

from trading_assets.domain import portfolio as pf
from trading_assets.settings import Settings
from trading_assets.store.warehouse import Warehouse, json_object, json_values


def append_audit(wh: Warehouse, out: pf.BookOutput, prov: dict[date, dict], run_id: str, settings: Settings) -> int:
    """Append every final decision, order and fill to audit_log (and data/audit/*.jsonl).

    The payloads are built column-wise (`audit_events`), a few months at a time (at most about
    _AUDIT_EVENTS_PER_CHUNK events, whole calendar months: each monthly JSONL file is written once,
    decisions then orders then fills, as before) so the payload text of a long backfill is never
    all in memory at once; each chunk is one INSERT."""
    n = 0
    for lo, hi in _month_chunks(out, _AUDIT_EVENTS_PER_CHUNK):
        part = dataclasses.replace(
            out, **{name: getattr(out, name).filter(pl.col("date").is_between(lo, hi))
                    for name in ("risk_decisions", "orders", "fills")})
        n += wh.append_audit_frame(audit_events(part, prov, run_id, settings))
    return n


_AUDIT_EVENTS_PER_CHUNK = 150_000


def _month_chunks(out: pf.BookOutput, max_events: int) -> list[tuple[date, date]]:
    """Date ranges [first, last] covering whole calendar months, each with about max_events events or fewer
    (a single month above max_events is its own chunk)."""
    dates = pl.concat([out.risk_decisions.select("date"), out.orders.select("date"), out.fills.select("date")])
    if dates.height == 0:
        return []
    per_month = (dates.group_by(pl.col("date").dt.truncate("1mo").alias("m"))
                 .agg(pl.len().alias("n"), pl.col("date").min().alias("lo"), pl.col("date").max().alias("hi"))
                 .sort("m"))
    chunks: list[tuple[date, date]] = []
    lo = hi = None
    count = 0
    for _, n, mlo, mhi in per_month.iter_rows():
        if lo is not None and count + n > max_events:
            chunks.append((lo, hi))
            lo, count = None, 0
        lo = mlo if lo is None else lo
        hi = mhi
        count += n
    chunks.append((lo, hi))
    return chunks


def audit_events(out: pf.BookOutput, prov: dict[date, dict], run_id: str, settings: Settings) -> pl.DataFrame:
    """One audit event per final decision, order and fill (frame for Warehouse.append_audit_frame).

    payload (JSON text, keys sorted, what json.dumps(..., sort_keys=True, default=str) writes):
    - decision: decision, reason_codes, current_weight, target_weight_raw, approved_weight,
      order_quantity, adjustments (the row's JSON), trading_state, pre_risk_decision, provenance;
    - order: order_id, side, quantity, reference_price, mode, provenance;
    - fill: order_id, order_date, side, quantity, price, commission, slippage_cost, status, reason
      (NaN -> null); its cycle_id is the one of the order's session.
    provenance is the session's entry of `provenance(...)` ({} when missing)."""
    h = settings.settings_hash()
    prov_days = sorted({*out.risk_decisions["date"].unique().to_list(), *out.orders["date"].unique().to_list()})
    prov_json = pl.DataFrame({"date": prov_days,
                              "provenance": [json.dumps(prov.get(d, {}), sort_keys=True, default=str) for d in prov_days]},
                             schema={"date": pl.Date, "provenance": pl.String})

    def events(frame: pl.DataFrame, event_type: str, payload: pl.Series, cycle_id: pl.Series) -> pl.DataFrame:
        return pl.DataFrame({"event_type": pl.Series([event_type] * frame.height, dtype=pl.String),
                             "run_id": pl.Series([run_id] * frame.height, dtype=pl.String),
                             "cycle_id": cycle_id, "date": frame["date"], "symbol": frame["symbol"],
                             "payload": payload})

    def provenance_of(frame: pl.DataFrame) -> pl.Series:
        return frame.select("date").join(prov_json, on="date", how="left", maintain_order="left")["provenance"]

    jv = json_values
    rd = out.risk_decisions
    dec_payload = json_object({
        "decision": jv(rd["decision"]), "reason_codes": jv(rd["reason_codes"]),
        "current_weight": jv(rd["current_weight"]), "target_weight_raw": jv(rd["target_weight_raw"]),
        "approved_weight": jv(rd["approved_weight"]), "order_quantity": jv(rd["order_quantity"]),
        "adjustments": rd["adjustments"], "trading_state": jv(rd["trading_state"]),
        "pre_risk_decision": jv(rd["pre_risk_decision"]), "provenance": provenance_of(rd).fill_null("{}"),
    })
    od = out.orders
    order_payload = json_object({
        **{k: jv(od[k]) for k in ("order_id", "side", "quantity", "reference_price", "mode")},
        "provenance": provenance_of(od).fill_null("{}"),
    })
    fd = out.fills.with_columns(pl.col(pl.Float64).fill_nan(None))
    fill_payload = json_object({k: jv(fd[k]) for k in ("order_id", "order_date", "side", "quantity", "price",
                                                       "commission", "slippage_cost", "status", "reason")})
    fill_cycle = fd.select((pl.col("order_date").cast(pl.String) + pl.lit(f"-{h}")).alias("cycle_id"))["cycle_id"]
    return pl.concat([events(rd, "decision", dec_payload, rd["cycle_id"]),
                      events(od, "order", order_payload, od["cycle_id"]),
                      events(fd, "fill", fill_payload, fill_cycle)], how="vertical")
