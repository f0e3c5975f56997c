"""Dagster instance storages: a SQLite event log that writes event batches in one transaction, and a
PostgreSQL storage with pooled connections (PooledPostgresStorage, at the end).

Why: a single-run range of N sessions records N materialization events per asset. Dagster's
`SqliteEventLogStorage` stores them one at a time, and each event opens a new SQLite engine on the
run shard and again on the index shard, commits (an fsync) and closes (a WAL checkpoint): about
15-60 ms per event here, so a 1-year `trading-cycle --test` spent ~90% of its wall time in event
bookkeeping (cProfile: 2,773 events, 158 s of 183 s inside `store_event`). Its inherited
`store_event_batch` cannot work on the sharded SQLite layout (it calls `_connect()` without a shard),
so Dagster silently falls back to one-by-one writes even with DAGSTER_EVENT_BATCH_SIZE set.

This storage keeps the same on-disk layout (per-run shards plus the index shard, readable by a
stock Dagster webserver) and changes three things:
- engines are cached per shard (a small LRU) instead of created and disposed per event;
- connections run with `PRAGMA synchronous=NORMAL` in WAL mode: durable against a crash of the
  process (SQLite's documented guarantee for WAL + NORMAL); only an OS crash or power loss can lose
  the last transactions of this dev/test instance;
- `store_event_batch` stores a batch in one transaction per shard, with exactly the rows the
  per-event path writes (run shard row; index shard row, asset tags and asset entry; check events
  through the stock path).
Use PostgreSQL (deploy/dagster-postgres.yaml) in production.
"""

import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as db
from sqlalchemy import exc as db_exc
from dagster import Field, StringSource
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import AssetKeyTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._core.storage.sqlite import create_db_conn_string
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool


SQLITE_BUSY_TIMEOUT_SECONDS = 30
MAX_CACHED_ENGINES = 8


def _set_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage with cached engines and real batch writes (see the module docstring).

    dagster.yaml:
        event_log_storage:
          module: trading_assets.instance_storage
          class: BatchedSqliteEventLogStorage
          # config: {base_dir: ...}  (default: $DAGSTER_HOME/history/runs, Dagster's own location)
    """

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        # Default: where Dagster's own SQLite storage keeps run event logs.
        if not base_dir and not os.environ.get("DAGSTER_HOME"):
            # Dagster's throw-away instance (`dagster dev` without DAGSTER_HOME) reads the project's
            # dagster.yaml from the cwd but tells a storage class nothing about its temporary folder.
            raise RuntimeError(
                "DAGSTER_HOME is not set: this project's instance needs it (a throw-away instance would not show "
                "the runs trading-cycle recorded). Start the UI as `DAGSTER_HOME=$PWD/data/dagster_home dagster dev` "
                "(trading-cycle's default instance) or export DAGSTER_HOME for both."
            )
        base_dir = base_dir or os.path.join(os.environ["DAGSTER_HOME"], "history", "runs")
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._known_tables: set[str] = set()
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls):
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "BatchedSqliteEventLogStorage":  # type: ignore[override]
        return cls(inst_data=inst_data, **config_value)

    # --- connections --------------------------------------------------------------------------
    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = db.create_engine(
                create_db_conn_string(self._base_dir, shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=4,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            db.event.listen(engine, "connect", _set_pragmas)
            self._engines[shard] = engine
            while len(self._engines) > MAX_CACHED_ENGINES:
                _, old = self._engines.popitem(last=False)
                old.dispose()
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def has_table(self, table_name: str) -> bool:
        # Asked once per stored asset event by the stock code; a table never disappears.
        if table_name in self._known_tables:
            return True
        found = super().has_table(table_name)
        if found:
            self._known_tables.add(table_name)
        return found

    def dispose(self) -> None:
        with self._engines_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
        if hasattr(super(), "dispose"):
            super().dispose()

    # --- batch writes -------------------------------------------------------------------------
    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        events = list(events)
        if not events:
            return
        # each event serialized once (the stock path serializes it again for the index shard, and a
        # third time per materialization for the asset's latest-materialization record)
        rows = [self._event_to_row(event) for event in events]
        by_run: dict[str, list[dict]] = defaultdict(list)
        for event, row in zip(events, rows):
            by_run[event.run_id].append(row)
        for run_id, run_rows in by_run.items():
            with self.run_connection(run_id) as conn:
                conn.execute(SqlEventLogStorageTable.insert(), run_rows)  # one executemany

        asset = [(e, r) for e, r in zip(events, rows) if e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS]
        if asset:
            with self.index_transaction() as conn:
                index_ids = []
                for _, row in asset:
                    with db_result(conn, SqlEventLogStorageTable.insert().values(**row)) as result:
                        index_ids.append(result.inserted_primary_key[0])
                asset_events = [e for e, _ in asset]
                self._store_asset_event_tags(conn, asset_events, index_ids)
                self._store_asset_entries(conn, asset_events, index_ids)

        for event, row in zip(events, rows):
            if event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS:
                with self.index_connection() as conn, db_result(conn, SqlEventLogStorageTable.insert().values(**row)) as result:
                    event_id = result.inserted_primary_key[0]
                self.store_asset_check_event(event, event_id)

    def _store_asset_entries(self, conn: Connection, events: Sequence[EventLogEntry], event_ids: Sequence[int]) -> None:
        """The asset_keys rows the stock path leaves after storing `events` one by one, written once
        per asset: each event's values (last_materialization, last_run_id, last_materialization_timestamp,
        whichever its type sets) applied in order = per column the value of the last event setting it,
        found walking back (a materialization sets all three, so an earlier one is never serialized)."""
        has_cols = self._has_asset_key_index_cols_on_connection(conn)
        merged: dict[str, dict] = {}
        for event, event_id in zip(reversed(events), reversed(event_ids)):
            if not (event.dagster_event and event.dagster_event.asset_key):
                continue
            values = merged.setdefault(event.dagster_event.asset_key.to_string(), {})
            if event.dagster_event.is_step_materialization and "last_materialization" in values:
                continue  # superseded by a later materialization of the same asset
            for k, v in self._get_asset_entry_values(event, event_id, has_cols).items():
                values.setdefault(k, v)
        for key, values in merged.items():
            if not values:
                continue
            try:  # as the stock path: SQLite rolls back the failed statement only, not the transaction
                conn.execute(AssetKeyTable.insert().values(asset_key=key, **values))
            except db_exc.IntegrityError:
                conn.execute(AssetKeyTable.update().values(**values).where(AssetKeyTable.c.asset_key == key))


def __getattr__(name: str):
    # PooledPostgresStorage lives in instance_storage_postgres: dagster-postgres and psycopg2 cost
    # ~0.2 s to import, which a SQLite instance (the quick start, every CLI run) never needs. The
    # name stays importable from here (deploy/dagster-postgres.yaml names this module).
    if name == "PooledPostgresStorage":
        from trading_assets.instance_storage_postgres import PooledPostgresStorage

        return PooledPostgresStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
