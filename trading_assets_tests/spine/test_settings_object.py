"""One Settings object per run (issue #14 item 6): the environment is read once by load_settings, the
CLI turns its flags into a Settings and hands the whole of it to the run through run config (never
through TRADING_* variables), and every asset of a run -- live mode included -- sees the same
Settings, so decisions, risk_decisions, orders and cycle_meta carry the same cycle_id."""

from __future__ import annotations

import dataclasses
import os
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from trading_assets.defs.resources import PipelineConfig
from trading_assets.domain import execution as ex
from trading_assets.settings import DEFAULT_UNIVERSE_FILE, Settings, load_settings, settings_from_dict


def _non_default(tmp_path: Path) -> Settings:
    s = load_settings({"TRADING_DATA_DIR": str(tmp_path), "TRADING_HISTORY_START": "2021-01-04", "TRADING_MODE": "live",
                       "TRADING_BROKER": "alpaca", "TRADING_LOCAL_DATA_DIR": str(tmp_path / "bars")})
    return s.replace(providers=("yfinance", "local"), seed=11,
                     quality=dataclasses.replace(s.quality, penalties=(("MISSING_BAR", 0.9),), split_ratios=(2.0, 3.0)),
                     risk=dataclasses.replace(s.risk, max_sector=0.2, recovery_phases=(0.5, 1.0)))


def test_settings_round_trip_through_plain_values(tmp_path):
    # every field of every section, present and future: the CLI hands Settings to the run as to_dict()
    for s in (load_settings({}), _non_default(tmp_path)):
        assert settings_from_dict(s.to_dict()) == s
        assert Settings.from_dict(s.to_dict()).settings_hash() == s.settings_hash()


def test_overrides_merge_section_by_section_and_refuse_unknown_fields(tmp_path):
    base = load_settings({"TRADING_DATA_DIR": str(tmp_path)})
    s = base.with_overrides({"history_start": "2022-03-01", "execution": {"mode": "live"}, "risk": {"max_sector": 0.2}})
    assert s.history_start == date(2022, 3, 1)
    assert s.execution == dataclasses.replace(base.execution, mode="live")  # the other execution fields kept
    assert s.risk.max_sector == 0.2 and s.risk.max_single_name == base.risk.max_single_name
    assert s.db_path == base.db_path
    with pytest.raises(ValueError, match="unknown RiskSettings field"):
        base.with_overrides({"risk": {"max_sectr": 0.2}})


def test_mode_is_read_from_the_environment_once_and_validated():
    assert load_settings({}).execution.mode == "paper"
    assert load_settings({"TRADING_MODE": "LIVE", "TRADING_BROKER": "x"}).execution.mode == "live"
    with pytest.raises(ValueError, match="TRADING_MODE"):
        load_settings({"TRADING_MODE": "papr"})


def test_cli_hands_its_settings_to_the_run_without_touching_the_environment(tmp_path, monkeypatch):
    from trading_assets import cli

    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path))
    bars = tmp_path / "bars"
    bars.mkdir()
    (bars / "AAPL.csv").write_text("date,symbol,open,high,low,close,adj_close,volume\n2024-01-02,AAPL,1,1,1,1,1,100\n")
    before = dict(os.environ)
    args = cli._run_parser().parse_args(["--test", "--date", "2024-06-28", "--workers", "3", "--universe", str(DEFAULT_UNIVERSE_FILE)])
    settings, start, end = cli._build_settings(args)
    assert dict(os.environ) == before  # no TRADING_* (or any) variable written
    assert (start, end) == (date(2023, 6, 29), date(2024, 6, 28)) and settings.history_start == start
    assert settings.providers == ("synthetic",) and settings.workers == 3 and settings.execution.mode == "paper"

    # the run rebuilds exactly that Settings from its run config, whatever the process environment says
    config = cli.run_config_for(settings, ["AAPL"])["resources"]
    monkeypatch.setenv("TRADING_HISTORY_START", "2020-01-02")
    monkeypatch.setenv("TRADING_PROVIDERS", "yfinance")
    run_side = PipelineConfig(**config["pipeline"]["config"])
    assert run_side.settings() == settings and run_side.symbols == ["AAPL"]
    assert config["warehouse"]["config"] == {"db_path": str(settings.db_path), "audit_dir": str(settings.audit_dir)}

    before = dict(os.environ)
    local = cli._run_parser().parse_args(["--date", "2024-06-28", "--source", "local", "--data-dir", str(bars)])
    s2, _, _ = cli._build_settings(local)
    assert s2.providers == ("local",) and s2.local_data_dir == bars.resolve() and s2.history_start == date(2020, 1, 2)
    assert dict(os.environ) == before


def test_pipeline_config_shortcuts_and_one_object_per_run(monkeypatch, tmp_path):
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path))
    p = PipelineConfig(mode="live", seed=3, settings_overrides={"execution": {"broker": "alpaca"}})
    s = p.settings()
    assert (s.execution.mode, s.execution.broker, s.seed) == ("live", "alpaca", 3)
    monkeypatch.setenv("TRADING_SEED", "99")
    assert p.settings() is s  # read once: a resource's settings do not drift with the environment


@pytest.mark.slow
def test_live_mode_run_has_one_cycle_id_in_every_table(tmp_path, monkeypatch):
    """The bug: in live mode the book replaced execution.mode on its own copy of the settings, so
    risk_decisions and orders carried a cycle_id from another settings hash than decisions and
    cycle_meta. Now the run's one Settings carries the mode."""
    from trading_assets_tests.reliability.conftest import HISTORY_START, SYMBOLS, UNCALIBRATED, _definitions_from, _environment, sessions, trading_env

    monkeypatch.setitem(ex.BROKERS, "test_live", ex.PaperBroker)  # a broker that accepts live mode, fills like paper
    window = sessions(HISTORY_START, 45)
    root = tmp_path / "run"
    with _environment(trading_env(root)):
        definitions = _definitions_from(HISTORY_START)
        data = root / "data"
        from trading_assets.defs.resources import WarehouseResource

        defs = dg.Definitions(
            assets=definitions.all_assets, asset_checks=definitions.all_checks,
            resources={"warehouse": WarehouseResource(db_path=str(data / "trading.duckdb"), audit_dir=str(data / "audit")),
                       "pipeline": PipelineConfig()},
        )
        overrides = {"execution": {"mode": "live", "broker": "test_live"}, **UNCALIBRATED}  # the book must trade in 45 sessions
        with dg.DagsterInstance.ephemeral() as instance:
            result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=instance,
                run_config={"resources": {"pipeline": {"config": {"symbols": SYMBOLS, "settings_overrides": overrides}}}},
                tags={"dagster/asset_partition_range_start": window[0].isoformat(),
                      "dagster/asset_partition_range_end": window[-1].isoformat()},
                raise_on_error=False,
            )
        assert result.success
        expected_hash = load_settings().with_overrides(overrides).settings_hash()
    from trading_assets.store.warehouse import Warehouse

    wh = Warehouse(root / "data" / "trading.duckdb", root / "data" / "audit")
    ids = {}
    for table in ("decisions", "risk_decisions", "orders", "cycle_meta"):
        frame = wh.read(f"SELECT DISTINCT date, cycle_id FROM {table} WHERE cycle_id IS NOT NULL ORDER BY 1")
        assert frame.height > 0, table
        ids[table] = dict(frame.rows())
        assert all(v == f"{d.isoformat()}-{expected_hash}" for d, v in ids[table].items()), (table, ids[table])
    assert ids["decisions"] == ids["risk_decisions"] == ids["cycle_meta"]
    # audit events (decision, order, fill: a fill names its order's cycle) carry the same hash
    audit = {c for (c,) in wh.read("SELECT DISTINCT cycle_id FROM audit_log WHERE cycle_id IS NOT NULL").rows()}
    assert audit and {c[11:] for c in audit} == {expected_hash}
    assert set(wh.read("SELECT DISTINCT mode FROM orders")["mode"].to_list()) == {"live"}
    modes = {m for (m,) in wh.read("SELECT DISTINCT json_extract_string(summary, '$.mode') FROM cycle_meta").rows()}
    assert modes == {"live"}
