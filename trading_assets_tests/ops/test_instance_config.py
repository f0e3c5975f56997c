"""The shipped instance settings: the run queue of one, retries, monitoring, telemetry off, the
PostgreSQL variant reading its URL from the environment, and the .env the UI loads."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
from dagster._core.instance.config import dagster_instance_config
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from trading_assets.cli import DAGSTER_ENV_DEFAULTS
from trading_assets.settings import PROJECT_ROOT


def _config(tmp_path, name: str) -> dict:
    shutil.copyfile(PROJECT_ROOT / name, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    return config


def test_default_instance_queues_one_run_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    cfg = _config(tmp_path, "dagster.yaml")
    assert cfg["concurrency"]["runs"]["max_concurrent_runs"] == 1
    assert cfg["run_retries"]["enabled"] and cfg["run_retries"]["max_retries"] == 2
    assert cfg["run_monitoring"]["enabled"] and cfg["telemetry"]["enabled"] is False
    assert "storage" not in cfg  # SQLite under DAGSTER_HOME: the zero-set-up default
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
        assert isinstance(instance.event_log_storage, SqliteEventLogStorage)  # SQLite layout (batched writes)


def test_postgres_instance_takes_a_psycopg2_url_from_the_environment(tmp_path):
    cfg = _config(tmp_path, "deploy/dagster-postgres.yaml")
    storage = cfg["storage"]["custom"]
    assert (storage["module"], storage["class"]) == ("trading_assets.instance_storage", "PooledPostgresStorage")
    assert storage["config"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    assert cfg["concurrency"]["runs"]["max_concurrent_runs"] == 1
    text = (PROJECT_ROOT / "deploy" / "dagster-postgres.yaml").read_text()
    assert "postgresql+psycopg2://" in text


def test_dotenv_matches_the_cli_defaults_and_leaves_dagster_home_to_the_user():
    env = dict(
        line.split("=", 1) for line in (PROJECT_ROOT / ".env").read_text().splitlines() if line and not line.startswith("#")
    )
    assert "DAGSTER_HOME" not in env  # .env values override the shell's: it must not replace an exported one
    for k, v in DAGSTER_ENV_DEFAULTS.items():
        assert env[k] == v
    assert (PROJECT_ROOT / "data" / "dagster_home" / "dagster.yaml").resolve() == (PROJECT_ROOT / "dagster.yaml").resolve()


def test_every_run_of_the_graph_is_in_process():
    from trading_assets.definitions import defs

    assert defs.resolve_implicit_global_asset_job_def().executor_def is dg.in_process_executor


@pytest.mark.parametrize("name", ["record_run_failure", "raise_data_incident", "draw_evaluation_plots"])
def test_failure_sensor_runs_by_default(name):
    from trading_assets.definitions import defs

    sensor = defs.get_repository_def().get_sensor_def(name)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
