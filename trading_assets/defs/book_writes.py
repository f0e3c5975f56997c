"""The book's writes: the five tables of a window, each replaced in one transaction (or one per block).

One block (5 years x 250 names): its five tables replace the window, one transaction each. Several
blocks: each block's rows are staged to Parquet as it is walked (`Stage.add`), then each table's window
is replaced one transaction per block (store/staged_writes.replace_window_in_session_blocks: DuckDB holds
the primary-key index of a transaction's rows until COMMIT, ~1 GB for a 2.5 M row risk_decisions), each
session whole in one block. A month is never split between blocks, so each monthly audit file gets its
lines in the same order as from one block.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import date, timedelta

import polars as pl

from trading_assets.domain import portfolio as pf
from trading_assets.store.staged_writes import replace_window_in_session_blocks
from trading_assets.store.warehouse import Warehouse

BOOK_TABLES = ("risk_decisions", "orders", "fills", "positions", "portfolio", "executions")


class Stage:
    """The walked blocks until they are written: kept in memory (one block) or staged to Parquet files
    in a temporary folder next to the database (several). A context manager: the folder goes on exit."""

    def __init__(self, wh: Warehouse, run_id: str, single: bool):
        self.wh, self.run_id, self.single = wh, run_id, single
        self.entries: list[tuple[date, date, pf.BookOutput | dict[str, str]]] = []  # (lo, hi, output or its files)
        self._dir: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> "Stage":
        self.wh.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._dir = tempfile.TemporaryDirectory(prefix=".book-stage-", dir=self.wh.db_path.parent)
        return self

    def __exit__(self, *exc) -> None:
        self._dir.cleanup()

    def with_run(self, df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(pl.lit(self.run_id, pl.String).alias("run_id"))

    def add(self, block: list[date], out: pf.BookOutput) -> None:
        """Keep a walked block: the block covers the days after the previous block's last session up to its own last."""
        lo = self.entries[-1][1] + timedelta(days=1) if self.entries else block[0]
        if self.single:
            self.entries.append((lo, block[-1], out))
            return
        k = len(self.entries)
        files = {t: f"{self._dir.name}/{k:04d}-{t}.parquet" for t in BOOK_TABLES}
        for t, path in files.items():
            self.with_run(getattr(out, t)).write_parquet(path, compression="uncompressed", statistics=False)
        self.entries.append((lo, block[-1], files))

    def frame(self, entry, table: str) -> pl.DataFrame:
        """A staged block's table with its run_id."""
        return self.with_run(getattr(entry, table)) if isinstance(entry, pf.BookOutput) else pl.read_parquet(entry[table])

    def outputs(self) -> Iterator[pf.BookOutput]:
        """Each staged block's decisions, orders and fills (what the audit records), block by block."""
        for _, _, entry in self.entries:
            if isinstance(entry, pf.BookOutput):
                yield entry
            else:
                yield pf.BookOutput(*(self.frame(entry, t).drop("run_id") for t in ("risk_decisions", "orders", "fills")),
                                    positions=pl.DataFrame(), portfolio=pl.DataFrame(), split_ratios={}, state=None)


def write_tables(wh: Warehouse, stage: Stage, start: date, end: date) -> None:
    """Replace the window [start, end] of each book table with the staged rows."""
    for table in BOOK_TABLES:
        if len(stage.entries) == 1:
            wh.replace_window(table, stage.frame(stage.entries[0][2], table), start, end)
        else:
            replace_window_in_session_blocks(wh, table, ((a, b, stage.frame(e, table)) for a, b, e in stage.entries),
                                             start, end)
