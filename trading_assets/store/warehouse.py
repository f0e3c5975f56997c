"""The DuckDB warehouse: schema, transactional partition replace, append-only audit, point-in-time reads.

Guarantees:
- `replace_window` runs BEGIN; DELETE the window; INSERT; COMMIT (ROLLBACK on any error), so a rerun
  never duplicates rows and a crash never leaves half a window written.
- `append_audit` only ever INSERTs into audit_log and appends the same events to JSONL files under
  the audit folder; nothing here updates or deletes audit rows.
- Readers open the file read-only and retry for a while when a writer holds DuckDB's file lock
  (DuckDB allows one writing process), then fail with a message that says so.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"

# Columns that record when/which run wrote a row: excluded when comparing tables for determinism.
VOLATILE_COLUMNS = frozenset({"run_id", "ingested_at", "computed_at", "created_at", "ts", "event_id", "duration_seconds", "latency_ms"})

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "lock on file")


class WarehouseLockedError(RuntimeError):
    """Another process holds the DuckDB write lock for longer than the retry budget."""


def _ident(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a valid SQL identifier: {name!r}")
    return name


def _is_lock_error(exc: Exception) -> bool:
    return any(m in str(exc) for m in _LOCK_MARKERS)


class Warehouse:
    """One DuckDB file plus its JSONL audit mirror."""

    def __init__(self, db_path: Path | str, audit_dir: Path | str | None = None, lock_timeout_s: float = 120.0):
        self.db_path = Path(db_path)
        self.audit_dir = Path(audit_dir) if audit_dir else self.db_path.parent / "audit"
        self.lock_timeout_s = lock_timeout_s

    # --- connections --------------------------------------------------------------------------
    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection, retried with backoff while another process holds the file lock."""
        if read_only and not self.db_path.exists():
            raise FileNotFoundError(f"no warehouse at {self.db_path}: run a cycle first (trading-cycle --test)")
        if not read_only:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.db_path), read_only=read_only)
                break
            except duckdb.Error as exc:  # IOException on a held lock
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    if _is_lock_error(exc):
                        raise WarehouseLockedError(
                            f"{self.db_path} is locked by another writing process (a run in progress?); "
                            f"gave up after {self.lock_timeout_s:.0f} s: {exc}"
                        ) from exc
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            yield con
        finally:
            con.close()

    def ensure_schema(self) -> None:
        """Create every table and view (idempotent)."""
        with self.connect() as con:
            for sql_file in sorted(SCHEMA_DIR.glob("*.sql")):
                con.execute(sql_file.read_text())

    def ensure_columns(self, table: str, columns: dict[str, str]) -> None:
        """ALTER TABLE ADD COLUMN IF NOT EXISTS for each {name: sql_type} (used by the wide features table)."""
        with self.connect() as con:
            existing = {r[0] for r in con.execute(f"DESCRIBE {_ident(table)}").fetchall()}
            for name, sql_type in columns.items():
                if name not in existing:
                    con.execute(f"ALTER TABLE {_ident(table)} ADD COLUMN {_ident(name)} {sql_type}")

    # --- writes ---------------------------------------------------------------------------
    def replace_window(
        self,
        table: str,
        frame: pl.DataFrame,
        start: date,
        end: date,
        date_column: str = "date",
        symbols: Sequence[str] | None = None,
    ) -> int:
        """Replace the rows of `table` with start <= date_column <= end (and, if given, only those
        symbols) by `frame`, in one transaction. Returns the rows inserted."""
        _ident(table), _ident(date_column)
        bad = frame.filter((pl.col(date_column) < start) | (pl.col(date_column) > end)) if frame.height else frame
        if bad.height:
            raise ValueError(f"{table}: {bad.height} rows fall outside the window {start}..{end}")
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                where = f"{date_column} BETWEEN ? AND ?"
                params: list = [start, end]
                if symbols is not None:
                    where += " AND symbol IN (SELECT unnest(?::VARCHAR[]))"
                    params.append(list(symbols))
                con.execute(f"DELETE FROM {table} WHERE {where}", params)
                self._insert(con, table, frame)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return frame.height

    def replace_table(self, table: str, frame: pl.DataFrame) -> int:
        """Replace a whole (unpartitioned) table in one transaction."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"DELETE FROM {_ident(table)}")
                self._insert(con, table, frame)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return frame.height

    def append(self, table: str, frame: pl.DataFrame) -> int:
        """INSERT only (append-only tables: provider_metrics, audit_log)."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                self._insert(con, table, frame)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return frame.height

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        cols = ", ".join(_ident(c) for c in frame.columns)
        con.register("_incoming", frame.to_arrow())
        try:
            con.execute(f"INSERT INTO {_ident(table)} ({cols}) SELECT {cols} FROM _incoming")
        finally:
            con.unregister("_incoming")

    def append_audit(self, events: Sequence[dict]) -> int:
        """Append audit events to audit_log and to <audit_dir>/audit-<YYYY-MM>.jsonl (by event date).

        Each event needs event_type and payload (a dict); run_id, cycle_id, date, symbol optional.
        event_id = sha256 of the event's content and its run, so the JSONL and table rows match.
        """
        if not events:
            return 0
        now = datetime.now()
        rows = []
        for e in events:
            payload = json.dumps(e.get("payload", {}), sort_keys=True, default=str)
            d = e.get("date")
            ident = json.dumps([e.get("run_id"), e["event_type"], str(d), e.get("symbol"), payload], default=str)
            rows.append(
                {
                    "event_id": hashlib.sha256(ident.encode()).hexdigest()[:24],
                    "ts": now,
                    "run_id": e.get("run_id"),
                    "cycle_id": e.get("cycle_id"),
                    "event_type": e["event_type"],
                    "date": d,
                    "symbol": e.get("symbol"),
                    "payload": payload,
                }
            )
        frame = pl.DataFrame(
            rows,
            schema={
                "event_id": pl.String,
                "ts": pl.Datetime("us"),
                "run_id": pl.String,
                "cycle_id": pl.String,
                "event_type": pl.String,
                "date": pl.Date,
                "symbol": pl.String,
                "payload": pl.String,
            },
        )
        self.append("audit_log", frame)
        self.audit_dir.mkdir(parents=True, exist_ok=True)
        by_file: dict[str, list[str]] = {}
        for r in rows:
            month = r["date"].strftime("%Y-%m") if r["date"] else now.strftime("%Y-%m")
            line = json.dumps({**r, "ts": r["ts"].isoformat(), "payload": json.loads(r["payload"])}, default=str)
            by_file.setdefault(f"audit-{month}.jsonl", []).append(line)
        for name, lines in by_file.items():
            with open(self.audit_dir / name, "a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
        return len(rows)

    # --- reads ----------------------------------------------------------------------------
    def read(self, sql: str, params: Sequence | None = None, read_only: bool = True) -> pl.DataFrame:
        """Run a parameterized query and return a polars frame."""
        if read_only and not self.db_path.exists():
            self.ensure_schema()
        with self.connect(read_only=read_only) as con:
            # A relation (con.sql) converts straight to polars; a DB-API result would copy the rows once more.
            return con.sql(sql, params=list(params or [])).pl()

    def read_window(
        self,
        table: str,
        start: date,
        end: date,
        symbols: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        order_by: str = "symbol, date",
    ) -> pl.DataFrame:
        """Point-in-time read: rows with start <= date <= end (nothing after `end` is ever returned)."""
        cols = ", ".join(_ident(c) for c in columns) if columns else "*"
        sql = f"SELECT {cols} FROM {_ident(table)} WHERE date BETWEEN ? AND ?"
        params: list = [start, end]
        if symbols is not None:
            sql += " AND symbol IN (SELECT unnest(?::VARCHAR[]))"
            params.append(list(symbols))
        sql += f" ORDER BY {order_by}"
        return self.read(sql, params)

    def table_hash(self, table: str, exclude: frozenset[str] = VOLATILE_COLUMNS) -> str:
        """sha256 of a table's content (volatile bookkeeping columns excluded), row order normalized."""
        with self.connect(read_only=True) as con:
            cols = [r[0] for r in con.execute(f"DESCRIBE {_ident(table)}").fetchall() if r[0] not in exclude]
            col_sql = ", ".join(cols)
            rows = con.execute(f"SELECT {col_sql} FROM {_ident(table)} ORDER BY ALL").fetchall()
        h = hashlib.sha256()
        for row in rows:
            h.update(repr(row).encode())
        return h.hexdigest()
