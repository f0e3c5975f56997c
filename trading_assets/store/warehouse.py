"""The DuckDB warehouse: schema, transactional partition replace, append-only audit, point-in-time reads.

Guarantees:
- `replace_window` runs BEGIN; DELETE the window; INSERT; COMMIT (ROLLBACK on any error), so a rerun
  never duplicates rows and a crash never leaves half a window written.
- `append_audit` only ever INSERTs into audit_log and appends the same events to JSONL files under
  the audit folder; nothing here updates or deletes audit rows. `append_audit_frame` is the same
  for a polars frame of events whose payloads are already JSON text (the book's ~450k events a
  5-year backfill: one INSERT, one buffered write per JSONL file, no per-event dicts).
- `json_values` / `json_object` build, column-wise, the exact text `json.dumps` writes (Python's
  float repr, ensure_ascii escapes); the rare values polars would print differently (|x| < 1e-4,
  non-finite floats, strings needing escapes) are formatted by `json.dumps` itself.
- Readers open the file read-only and retry for a while when a writer holds DuckDB's file lock
  (DuckDB allows one writing process), then fail with a message that says so.
- Inside a run (`share_database`, entered by the Dagster warehouse resource for the run's
  duration) every connection of this process is a cursor on ONE open database instead of a fresh
  open of the file: opening a 5-year file costs ~20 ms (its catalog is read each time) and a daily
  cycle opened it ~160 times. The shared database is closed again after `idle_close_s` without an
  open cursor, so a reader in another process (explain, a notebook) gets in during a long compute.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
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


AUDIT_SCHEMA = {
    "event_id": pl.String,
    "ts": pl.Datetime("us"),
    "run_id": pl.String,
    "cycle_id": pl.String,
    "event_type": pl.String,
    "date": pl.Date,
    "symbol": pl.String,
    "payload": pl.String,
}
_AUDIT_CHUNK = 100_000  # events per chunk when building event ids and JSONL lines (bounds the transient memory)

# A string json.dumps writes as '"' + s + '"': printable ASCII without '"' and '\\'.
_JSON_PLAIN_STRING = r"^[ !#-\[\]-~]*$"
# Floats whose polars text is Python's repr (shortest round trip, same notation): finite, 0 or 1e-4 <= |x| < 1e16.
_FLOAT_REPR_LOW, _FLOAT_REPR_HIGH = 1e-4, 1e16


def _json_dumps_each(values: list) -> list[str]:
    return [json.dumps(v) for v in values]


def json_values(series: pl.Series) -> pl.Series:
    """Each value as the text `json.dumps(value)` writes (None -> null), computed column-wise.

    Types: String, floats (Python's float repr: polars prints the same digits except for
    |x| < 1e-4 and non-finite values, which go through json.dumps), integers, Boolean, Date (as
    json.dumps(str(d)), what default=str writes), List(String). Strings that need escaping (quote,
    backslash, control or non-ASCII characters) go through json.dumps (ensure_ascii escapes)."""
    name, dtype = series.name, series.dtype
    if dtype == pl.Null:
        return pl.Series(name, ["null"] * series.len(), dtype=pl.String)
    if dtype == pl.String:
        plain = series.str.contains(_JSON_PLAIN_STRING).fill_null(True)
        out = pl.select(pl.when(series.is_null()).then(pl.lit("null")).otherwise(
            pl.lit('"') + series + pl.lit('"')).alias(name)).to_series()
        return _patch(out, ~plain, series, _json_dumps_each)
    if dtype.is_float():
        f = series.cast(pl.Float64)
        special = ~(f.is_finite() & ((f == 0) | ((f.abs() >= _FLOAT_REPR_LOW) & (f.abs() < _FLOAT_REPR_HIGH))))
        special = special.fill_null(False)
        out = pl.select(pl.when(f.is_null()).then(pl.lit("null")).otherwise(f.cast(pl.String)).alias(name)).to_series()
        return _patch(out, special, f, lambda vs: [json.dumps(float(v)) for v in vs])
    if dtype.is_integer():
        return series.cast(pl.String).fill_null("null").alias(name)
    if dtype == pl.Boolean:
        return pl.select(pl.when(series.is_null()).then(pl.lit("null")).when(series).then(pl.lit("true"))
                         .otherwise(pl.lit("false")).alias(name)).to_series()
    if dtype == pl.Date:
        return pl.select(pl.when(series.is_null()).then(pl.lit("null")).otherwise(
            pl.lit('"') + series.cast(pl.String) + pl.lit('"')).alias(name)).to_series()
    if dtype == pl.List(pl.String):
        flat = series.explode()
        if flat.drop_nulls().str.contains(_JSON_PLAIN_STRING).all():
            inner = series.list.eval(pl.lit('"') + pl.element() + pl.lit('"')).list.join(", ")
            out = pl.select(pl.when(series.is_null()).then(pl.lit("null")).otherwise(
                pl.lit("[") + inner + pl.lit("]")).alias(name)).to_series()
            return _patch(out, series.list.eval(pl.element().is_null()).list.any().fill_null(False),
                          series, _json_dumps_each)
        return pl.Series(name, _json_dumps_each(series.to_list()), dtype=pl.String)
    return pl.Series(name, _json_dumps_each(series.to_list()), dtype=pl.String)  # anything else: row by row


def _patch(out: pl.Series, mask: pl.Series, source: pl.Series, fmt) -> pl.Series:
    """out with the rows of `mask` replaced by fmt(those rows of source)."""
    idx = mask.arg_true()
    if idx.len() == 0:
        return out
    return out.scatter(idx, pl.Series(fmt(source.gather(idx).to_list()), dtype=pl.String))


def json_object(fields: Mapping[str, pl.Series]) -> pl.Series:
    """Per row, the text json.dumps(dict, sort_keys=True) writes for the dict {key: value}, given
    each value already as JSON text (json_values, or text json.dumps(..., sort_keys=True) wrote)."""
    keys = sorted(fields)
    parts: list = [pl.lit("{")]
    for i, k in enumerate(keys):
        parts.append(pl.lit(("" if i == 0 else ", ") + json.dumps(k) + ": "))
        parts.append(fields[k].alias(f"_v{i}"))
    parts.append(pl.lit("}"))
    return pl.select(pl.concat_str(parts).alias("json")).to_series()


def _json_string_of_text(text: pl.Series) -> pl.Series:
    """json.dumps(text) for each string (used to embed a payload in the event-id identity)."""
    escaped = text.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
    out = pl.select(pl.when(text.is_null()).then(pl.lit("null")).otherwise(
        pl.lit('"') + escaped + pl.lit('"')).alias(text.name)).to_series()
    printable = text.str.contains(r"^[ -~]*$").fill_null(True)
    return _patch(out, ~printable, text, _json_dumps_each)


class WarehouseLockedError(RuntimeError):
    """Another process holds the DuckDB write lock for longer than the retry budget."""


def _ident(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a valid SQL identifier: {name!r}")
    return name


def _is_lock_error(exc: Exception) -> bool:
    return any(m in str(exc) for m in _LOCK_MARKERS)


class _SharedDatabase:
    """One read-write DuckDB database of this process that connections share as cursors.

    Opened on the first cursor, closed `idle_close_s` after the last cursor is released (so other
    processes can open the file in between) and when the sharing ends. The schema is ensured once
    per sharing, not on every resource access. One closer thread per sharing watches the idle time
    (a timer thread per release cost ~1.5 ms each under load, ~130 of them in a daily cycle)."""

    def __init__(self, idle_close_s: float):
        self.idle_close_s = idle_close_s
        self.users = 1  # nested share_database calls on the same file
        self.schema_ensured = False
        self._db: duckdb.DuckDBPyConnection | None = None
        self._active = 0
        self._idle_since: float | None = None  # monotonic time the last cursor was released
        self._cond = threading.Condition()
        self._closer: threading.Thread | None = None
        self._stopped = False

    def cursor(self, open_db) -> duckdb.DuckDBPyConnection | None:
        """A cursor of the shared database (opened if closed), or None once the sharing has ended: a
        caller that took this object just before `unshare_database` then opens the file on its own
        (reopening here would leave the file open with no closer for the rest of the process)."""
        with self._cond:
            if self._stopped:
                return None
            self._idle_since = None
            if self._db is None:
                self._db = open_db()
            self._active += 1
            return self._db.cursor()

    def release(self, cursor: duckdb.DuckDBPyConnection) -> None:
        cursor.close()
        with self._cond:
            self._active -= 1
            if self._active == 0 and self._db is not None:
                self._idle_since = time.monotonic()
                if self._closer is None:
                    self._closer = threading.Thread(target=self._close_when_idle, name="duckdb-idle-closer", daemon=True)
                    self._closer.start()
                self._cond.notify_all()

    def _close_when_idle(self) -> None:
        """The closer thread: closes the database once it has been idle for idle_close_s."""
        with self._cond:
            while not self._stopped:
                if self._db is None or self._active or self._idle_since is None:
                    self._cond.wait()
                    continue
                left = self._idle_since + self.idle_close_s - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._db.close()
                self._db = None
                self._idle_since = None

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            if self._db is not None:
                self._db.close()  # DuckDB checkpoints the WAL into the file here
                self._db = None


_SHARED: dict[Path, _SharedDatabase] = {}
_SHARED_LOCK = threading.Lock()


def _shared_key(db_path: Path | str) -> Path:
    return Path(db_path).resolve()


def share_database(db_path: Path | str, idle_close_s: float = 0.5) -> None:
    """From now on, connections of this process to `db_path` are cursors on one shared database
    (see the module docstring) until the matching `unshare_database`. Nested calls are counted."""
    key = _shared_key(db_path)
    with _SHARED_LOCK:
        if key in _SHARED:
            _SHARED[key].users += 1
        else:
            _SHARED[key] = _SharedDatabase(idle_close_s)


def unshare_database(db_path: Path | str) -> None:
    """End one `share_database`; the last one closes the shared database (checkpointing it)."""
    key = _shared_key(db_path)
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users > 0:
            return
        del _SHARED[key]
    shared.close()


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
        shared = _SHARED.get(_shared_key(self.db_path)) if _SHARED else None
        con = shared.cursor(lambda: self._open(read_only=False)) if shared is not None else None
        if con is not None:
            # a cursor of the run's shared read-write database (read-only callers only read)
            try:
                con.execute("SET enable_progress_bar = false")
                yield con
            finally:
                shared.release(con)
            return
        con = self._open(read_only)
        try:
            yield con
        finally:
            con.close()

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """duckdb.connect, retried with backoff while another process holds the file lock."""
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.db_path), read_only=read_only)
                # no progress bar: DuckDB prints it on the process stdout (fd 1), inside the CLI's JSON
                con.execute("SET enable_progress_bar = false")
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
        return con

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside BEGIN ... COMMIT; ROLLBACK on any error (then re-raised)."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def ensure_schema(self) -> None:
        """Create every table and view (idempotent; once per sharing of the database)."""
        shared = _SHARED.get(_shared_key(self.db_path)) if _SHARED else None
        if shared is not None and shared.schema_ensured:
            return
        with self.connect() as con:
            for sql_file in sorted(SCHEMA_DIR.glob("*.sql")):
                con.execute(sql_file.read_text())
        if shared is not None:
            shared.schema_ensured = True

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
        where = f"{date_column} BETWEEN ? AND ?"
        params: list = [start, end]
        if symbols is not None:
            where += " AND symbol IN (SELECT unnest(?::VARCHAR[]))"
            params.append(list(symbols))
        with self.transaction() as con:
            con.execute(f"DELETE FROM {table} WHERE {where}", params)
            self._insert(con, table, frame)
        return frame.height

    def replace_table(self, table: str, frame: pl.DataFrame) -> int:
        """Replace a whole (unpartitioned) table in one transaction."""
        with self.transaction() as con:
            con.execute(f"DELETE FROM {_ident(table)}")
            self._insert(con, table, frame)
        return frame.height

    def append(self, table: str, frame: pl.DataFrame) -> int:
        """INSERT only (append-only tables: provider_metrics, audit_log)."""
        with self.transaction() as con:
            self._insert(con, table, frame)
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
        frame = pl.DataFrame(
            {
                "run_id": [e.get("run_id") for e in events],
                "cycle_id": [e.get("cycle_id") for e in events],
                "event_type": [e["event_type"] for e in events],
                "date": [e.get("date") for e in events],
                "symbol": [e.get("symbol") for e in events],
                "payload": [json.dumps(e.get("payload", {}), sort_keys=True, default=str) for e in events],
            },
            schema={k: AUDIT_SCHEMA[k] for k in ("run_id", "cycle_id", "event_type", "date", "symbol", "payload")},
        )
        return self.append_audit_frame(frame)

    def append_audit_frame(self, events: pl.DataFrame) -> int:
        """append_audit for a frame of events: columns event_type and payload, optional run_id,
        cycle_id, date, symbol. payload is the JSON text of the payload dict as
        json.dumps(payload, sort_keys=True, default=str) writes it (json_object builds it).

        event_id = sha256(json.dumps([run_id, event_type, str(date), symbol, payload]))[:24] (hex), as
        append_audit; the JSONL line of an event is json.dumps of {event_id, ts, run_id, cycle_id,
        event_type, date, symbol, payload (as an object)}, the table row holds the payload text.
        All rows go in with one INSERT; each JSONL file gets one buffered write.
        """
        if events.height == 0:
            return 0
        now = datetime.now()
        n = events.height
        cols = {}
        for name in ("run_id", "cycle_id", "event_type", "date", "symbol", "payload"):
            if name in events.columns:
                cols[name] = events[name].cast(AUDIT_SCHEMA[name])
            else:
                cols[name] = pl.Series(name, [None] * n, dtype=AUDIT_SCHEMA[name])
        if cols["event_type"].null_count() or cols["payload"].null_count():
            raise ValueError("audit events need an event_type and a payload")
        base = pl.DataFrame(cols)
        ts_json = json.dumps(now.isoformat())
        this_month = now.strftime("%Y-%m")
        ids: list[pl.Series] = []
        by_file: dict[str, list[str]] = {}
        for off in range(0, n, _AUDIT_CHUNK):
            c = base.slice(off, _AUDIT_CHUNK)
            enc = {k: json_values(c[k]) for k in ("run_id", "cycle_id", "event_type", "date", "symbol")}
            date_text = pl.select(pl.when(c["date"].is_null()).then(pl.lit('"None"')).otherwise(enc["date"])).to_series()
            ident = pl.select(pl.concat_str([
                pl.lit("["), enc["run_id"], pl.lit(", "), enc["event_type"], pl.lit(", "), date_text, pl.lit(", "),
                enc["symbol"], pl.lit(", "), _json_string_of_text(c["payload"]), pl.lit("]")])).to_series()
            eid = pl.Series("event_id", [hashlib.sha256(t.encode()).hexdigest()[:24] for t in ident.to_list()],
                            dtype=pl.String)
            del ident
            ids.append(eid)
            line = pl.select(pl.concat_str([
                pl.lit('{"event_id": '), json_values(eid), pl.lit(f', "ts": {ts_json}, "run_id": '), enc["run_id"],
                pl.lit(', "cycle_id": '), enc["cycle_id"], pl.lit(', "event_type": '), enc["event_type"],
                pl.lit(', "date": '), enc["date"], pl.lit(', "symbol": '), enc["symbol"],
                pl.lit(', "payload": '), c["payload"], pl.lit("}")]).alias("line")).to_series()
            month = c["date"].dt.strftime("%Y-%m").fill_null(this_month)
            for (m,), g in pl.DataFrame({"m": month, "line": line}).partition_by("m", as_dict=True,
                                                                                 maintain_order=True).items():
                by_file.setdefault(f"audit-{m}.jsonl", []).append(g["line"].str.join("\n")[0])
        frame = base.with_columns(pl.concat(ids).alias("event_id"), pl.lit(now, AUDIT_SCHEMA["ts"]).alias("ts")).select(
            list(AUDIT_SCHEMA))
        self.append("audit_log", frame)
        self.audit_dir.mkdir(parents=True, exist_ok=True)
        for name, blocks in by_file.items():
            with open(self.audit_dir / name, "a", encoding="utf-8") as fh:
                fh.write("\n".join(blocks) + "\n")
        return n

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
