"""The Dagster instance on a real PostgreSQL server (deploy/dagster-postgres.yaml: pooled connections, a
`postgresql+psycopg2://` URL from DAGSTER_POSTGRES_URL, event batching on): a multi-year backfill in
ONE run records the materialization of every partition of every session asset."""

from __future__ import annotations

import json
from datetime import date

import dagster as dg
import pytest

from trading_assets.domain import calendar
from trading_assets.settings import PROJECT_ROOT
from trading_assets_tests.ops.conftest import base_env, make_home, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

START, END = date(2024, 1, 2), date(2025, 12, 31)  # two full years: 252 + 250 sessions


def test_multi_year_backfill_on_postgres_records_every_partition(postgres_server, tmp_path, monkeypatch):
    data, home = tmp_path / "data", make_home(tmp_path / "home", PROJECT_ROOT / "deploy" / "dagster-postgres.yaml")
    data.mkdir()
    env = base_env(data, home, DAGSTER_POSTGRES_URL=postgres_server.url)
    proc = run_cli(["--start", START.isoformat(), "--end", END.isoformat(), "--symbols", "AAPL,XOM"], env, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run_id = json.loads(proc.stdout)["run_id"]
    sessions = {d.isoformat() for d in calendar.sessions(START, END)}
    assert len(sessions) == 502

    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_server.url)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        # PooledPostgresStorage: the engines keep connections (stock dagster-postgres: NullPool)
        assert type(instance.event_log_storage._engine.pool).__name__ == "QueuePool"
        assert type(instance.run_storage._engine.pool).__name__ == "QueuePool"
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (str(START), str(END))
        from trading_assets.definitions import defs

        graph = defs.get_repository_def().asset_graph
        session_assets = [k for k in graph.materializable_asset_keys if graph.get(k).is_partitioned]
        assert len(session_assets) >= 11
        for key in session_assets:
            assert instance.get_materialized_partitions(key) == sessions, key.to_user_string()
        # the unpartitioned universe once, and every record belongs to this one run
        assert instance.get_latest_materialization_event(dg.AssetKey("universe")).run_id == run_id
        assert {r.run_id for r in instance.fetch_materializations(dg.AssetKey("cycle_summary"), limit=600).records} == {run_id}
