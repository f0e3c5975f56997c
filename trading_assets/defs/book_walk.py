"""The book's body without Dagster: read the inputs, walk the window in blocks, write, audit.

`write_book` reads like the asset: read inputs (book_inputs) -> run the book block by block
(domain.portfolio.run_book, checked as it goes: book_checks) -> write the five tables (book_writes)
-> append the audit (book_audit) -> a BookWrite that the metadata (book_metadata) reports.

Memory is bounded by blocks: the walk and the writes go by whole months, _WRITE_BLOCK_ROWS decision
rows at a time (`write_blocks`; 5 years x 250 names is one block). Nothing is written before the
whole window is computed (an error in the walk writes nothing): a window of several blocks stages each
block's rows to Parquet as it is walked (book_writes.Stage).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from datetime import date

import polars as pl

from trading_assets.defs import book_audit, book_checks, book_inputs, book_writes
from trading_assets.domain import execution as ex
from trading_assets.domain import portfolio as pf
from trading_assets.settings import Settings
from trading_assets.store.warehouse import Warehouse

_WRITE_BLOCK_ROWS = 400_000  # decision rows walked, written and audited at once (whole months; 5 years x 250 names: one block)


def write_blocks(sessions: list[date], n_symbols: int, max_rows: int = _WRITE_BLOCK_ROWS) -> list[list[date]]:
    """The sessions in consecutive blocks of whole calendar months, each of at most max_rows decision
    rows (sessions x n_symbols); a single month above it is a block of its own."""
    months: list[list[date]] = []
    for d in sessions:
        if months and (d.year, d.month) == (months[-1][0].year, months[-1][0].month):
            months[-1].append(d)
        else:
            months.append([d])
    blocks: list[list[date]] = []
    for m in months:
        if blocks and (len(blocks[-1]) + len(m)) * max(n_symbols, 1) <= max_rows:
            blocks[-1].extend(m)
        else:
            blocks.append(list(m))
    return blocks


@dataclasses.dataclass
class BookWrite:
    """What `write_book` wrote over a window: the counts, check results and the few rows the
    metadata shows (no table of the window is kept whole)."""

    fresh_start: bool
    decision_rows: int = 0
    decision_counts: Counter = dataclasses.field(default_factory=Counter)
    last_decisions: pl.DataFrame | None = None  # the rows of the last session that has decisions
    last_session_decisions: pl.DataFrame | None = None  # the rows of the window's last session
    audit_events: int = 0
    orders: int = 0
    fills: int = 0
    filled: int = 0
    commission: float = 0.0
    slippage_cost: float = 0.0
    position_rows: int = 0
    portfolio: pl.DataFrame | None = None
    duplicate_decisions: list[dict] = dataclasses.field(default_factory=list)
    limit_breaches: list[dict] = dataclasses.field(default_factory=list)
    duplicate_order_ids: list[str] = dataclasses.field(default_factory=list)
    position_mismatches: list[dict] = dataclasses.field(default_factory=list)
    final_state: pf.BookState | None = None  # the book after the window (its pending orders: the last session's)
    executions: int = 0  # child orders written
    shortfall: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])  # e(avg-O)q, Oq, e(avg-TP)q, TPq
    filled_shares: float = 0.0
    ordered_shares: float = 0.0

    @property
    def last_portfolio_row(self) -> dict:
        p = self.portfolio
        return p.row(p.height - 1, named=True) if p is not None and p.height else {}


def write_book(wh: Warehouse, settings: Settings, broker: ex.Broker, sessions: list[date], run_id: str,
               symbols: list[str] | None = None, live=None) -> BookWrite:
    """Walk the window's sessions and write the book: the asset's body without Dagster.

    live (defs/live.LiveSession, live or dry-run runs): reconciles with the broker after the walk and
    before any write (a difference writes nothing, sends nothing), sends the last session's orders
    after the writes."""
    inputs = book_inputs.read_inputs(wh, sessions, settings, symbols)
    blocks = write_blocks(sessions, inputs.n_symbols, _WRITE_BLOCK_ROWS)
    with book_writes.Stage(wh, run_id, single=len(blocks) == 1) as stage:
        w = run_blocks(inputs, blocks, settings, broker, stage)
        if live is not None:
            live.reconcile(w.final_state)
        book_writes.write_tables(wh, stage, sessions[0], sessions[-1])
        w.audit_events = sum(book_audit.append_audit(wh, out, inputs.provenance, run_id, settings)
                             for out in stage.outputs())
    if live is not None:
        live.send(w.final_state)
    return w


def _shortfall_terms(fills: pl.DataFrame, filled: pl.DataFrame) -> pl.DataFrame:
    """Per filled parent: e (avg - O) q, O q, e (avg - TP) q, TP q (0 where TP is unknown), and the
    shares filled / ordered of every parent (summed once over the window: the same bits in one block
    or several)."""
    if "arrival_price" not in filled.columns:
        return pl.DataFrame()
    e = pl.when(pl.col("side") == ex.BUY).then(1.0).otherwise(-1.0)
    q, p, tp = pl.col("quantity"), pl.col("price"), pl.col("vwap_proxy")
    return filled.select((e * (p - pl.col("arrival_price")) * q).alias("a"), (pl.col("arrival_price") * q).alias("b"),
                         (e * (p - tp) * q).fill_null(0.0).alias("c"), (tp * q).fill_null(0.0).alias("d"))


def _shortfall_totals(w: BookWrite, terms: list[pl.DataFrame], fills_q: list[pl.DataFrame]) -> None:
    t = pl.concat([x for x in terms if x.width], rechunk=True) if any(x.width for x in terms) else pl.DataFrame()
    if t.height:
        w.shortfall = [float(t[c].sum()) for c in ("a", "b", "c", "d")]
    f = pl.concat(fills_q, rechunk=True) if fills_q else pl.DataFrame()
    if f.height and "ordered_quantity" in f.columns:
        w.filled_shares, w.ordered_shares = float(f["quantity"].sum()), float(f["ordered_quantity"].sum())


def run_blocks(inputs: book_inputs.BookInputs, blocks: list[list[date]], settings: Settings, broker: ex.Broker,
               stage: book_writes.Stage) -> BookWrite:
    """Run the book block by block, each from the state the previous one left; check each block and
    hand its output to `stage`. Returns the window's counts and check results."""
    state = inputs.state
    end = inputs.sessions[-1]
    w = BookWrite(fresh_start=inputs.before["fresh_start"])
    prev_qty = inputs.before["prev_qty"]
    order_ids, commission, slippage, portfolios, terms, fills_q = [], [], [], [], [], []
    for block in blocks:
        out = pf.run_book(state, itertools.islice(inputs.session_inputs, len(block)), settings, broker)
        state = out.state
        rd = out.risk_decisions
        w.decision_rows += rd.height
        w.decision_counts.update(rd["decision"].to_list())
        if rd.height:
            w.last_decisions = rd.filter(pl.col("date") == rd["date"].max())
        if block[-1] == end:
            w.last_session_decisions = rd.filter(pl.col("date") == end)
        w.duplicate_decisions += book_checks.duplicate_decisions(rd)
        w.limit_breaches += book_checks.limit_breaches(rd, settings)
        order_ids.append(out.orders["order_id"])
        filled = out.fills.filter(pl.col("status") == ex.FILLED)
        w.orders += out.orders.height
        w.fills += out.fills.height
        w.filled += filled.height
        commission.append(filled["commission"])
        slippage.append(filled["slippage_cost"])
        w.position_rows += out.positions.height
        w.executions += out.executions.height
        terms.append(_shortfall_terms(out.fills, filled))
        fills_q.append(out.fills.select([c for c in ("quantity", "ordered_quantity") if c in out.fills.columns]))
        w.position_mismatches += book_checks.check_positions(out, prev_qty, block)
        last_pos = out.positions.filter(pl.col("date") == block[-1])
        prev_qty = dict(zip(last_pos["symbol"].to_list(), last_pos["quantity"].to_list()))
        portfolios.append(out.portfolio)
        stage.add(block, out)
        del out, rd, filled
    w.final_state = state
    _shortfall_totals(w, terms, fills_q)
    ids = pl.concat(order_ids)
    w.duplicate_order_ids = ids.to_frame().group_by("order_id").len().filter(pl.col("len") > 1)["order_id"].to_list()
    # one contiguous column each, summed as the whole window's column was
    w.commission = float(pl.concat(commission, rechunk=True).sum() or 0.0)
    w.slippage_cost = float(pl.concat(slippage, rechunk=True).sum() or 0.0)
    w.portfolio = pl.concat(portfolios, rechunk=True)
    if w.last_decisions is None:
        w.last_decisions = pl.DataFrame(schema=pf.RISK_DECISION_SCHEMA)
    return w
