"""The ablation switch `agents.disabled`: names checked against the registries (a clear error at the CLI
and in the assets), a disabled agent writes no rows and no fits, a disabled trained family neither trains
nor scores; through real Dagster materializations on a real DuckDB file (the models' synthetic market)."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from trading_assets.defs import models as model_defs
from trading_assets.defs import signals as sig_defs
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain import calendar
from trading_assets.domain.agents import AGENTS, TRAINED_AGENTS, check_disabled, enabled_agents, enabled_trained
from trading_assets.domain.models import training
from trading_assets.settings import AgentSettings, ModelSettings
from trading_assets_tests.models.test_assets import MODELS, _range, fill

OFF = ("garch", "momentum", "gbm_ranker", "trained_momentum", "ranknet", "transformer")


def test_disabled_names_are_checked_against_both_registries():
    s = AgentSettings(disabled=OFF)
    assert check_disabled(s) == OFF
    assert [a.name for a in enabled_agents(s)] == [a.name for a in AGENTS if a.name not in OFF]
    assert "garch" not in [a.name for a in enabled_agents(s)] and len(enabled_agents(s)) == len(AGENTS) - 2
    assert [a.name for a in enabled_trained(s)] == ["gbm_cross_section"]
    assert enabled_agents(AgentSettings()) == AGENTS and enabled_trained(AgentSettings()) == TRAINED_AGENTS
    with pytest.raises(ValueError, match=r"unknown agent or model family name\(s\) \['grach'\]; agents: \[.*'garch'.*model families: \[.*'ranknet'"):
        enabled_agents(AgentSettings(disabled=("grach", "garch")))
    # a variant is not a family: the switch turns whole families off
    with pytest.raises(ValueError, match="gbm_ranker.shallow"):
        check_disabled(AgentSettings(disabled=("gbm_ranker.shallow",)))


def test_cli_rejects_an_unknown_name_before_any_run(tmp_path, monkeypatch):
    from trading_assets import cli

    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path))
    args = cli._run_parser().parse_args(["--test", "--date", "2024-06-28", "--settings", '{"agents": {"disabled": ["hmm"]}}'])
    with pytest.raises(cli.CliError, match=r"--settings .*unknown agent or model family name\(s\) \['hmm'\]"):
        cli._build_settings(args)
    ok = cli._run_parser().parse_args(["--test", "--date", "2024-06-28", "--settings", '{"agents": {"disabled": ["hmm_regime", "gbm_ranker"]}}'])
    settings, _, _ = cli._build_settings(ok)
    assert settings.agents.disabled == ("hmm_regime", "gbm_ranker")


def _resources(wh, disabled) -> dict:
    return {
        "warehouse": WarehouseResource(db_path=str(wh.db_path), audit_dir=str(wh.audit_dir)),
        "pipeline": PipelineConfig(settings_overrides={"models": MODELS, "agents": {"disabled": list(disabled)}}),
    }


def test_a_disabled_agent_or_family_does_not_run_or_train(warehouse):
    wh = warehouse
    fill(wh, n_symbols=8)
    m = ModelSettings(**MODELS)
    days = training.training_sessions(date(2024, 10, 1), date(2025, 1, 31), m)
    t0 = next(t for t in days if training.is_training_session(t, m, m.shadow_cadence_multiple))  # the challengers train too
    window = (calendar.previous_session(t0), t0)  # one training session and the session before it
    assets = [model_defs.model_training, sig_defs.agent_outputs]
    r = dg.materialize(assets, tags=_range(*window), resources=_resources(wh, OFF))
    assert r.success
    runs = wh.read("SELECT agent FROM model_training_runs")
    assert set(runs["agent"]) == {"gbm_cross_section", "gbm_cross_section.sliding3y"}  # the one family left trained
    agents = set(wh.read("SELECT DISTINCT agent FROM model_outputs")["agent"])
    assert agents == {a.name for a in AGENTS if a.name not in OFF} | {"gbm_cross_section", "gbm_cross_section.sliding3y"}
    fits = wh.read("SELECT DISTINCT agent FROM agent_fits")["agent"].to_list() if wh.read(
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'agent_fits'")["n"][0] else []
    assert "garch" not in fits
    meta = r.asset_materializations_for_node("agent_outputs")[0].metadata
    assert meta["disabled"].value == list(OFF) and "garch" not in meta["agents"].value

    # every trained family off: no training at all, no trained rows; the statistical agents back on
    families = [a.name for a in TRAINED_AGENTS] + ["ranknet", "transformer"]
    r = dg.materialize(assets, tags=_range(*window), resources=_resources(wh, sorted(set(families))))
    assert r.success
    assert r.asset_materializations_for_node("model_training")[0].metadata["trained"].value == 0
    assert wh.read("SELECT count(*) AS n FROM model_training_runs")["n"][0] == 0
    out = wh.read("SELECT DISTINCT agent, role FROM model_outputs")
    assert set(out["role"]) == {"heuristic"} and set(out["agent"]) == {a.name for a in AGENTS}

    # an unknown name fails the asset, naming it
    bad = dg.materialize([sig_defs.agent_outputs], partition_key=str(window[1]), resources=_resources(wh, ["garhc"]),
                         raise_on_error=False)
    assert not bad.success
    err = [e for e in bad.all_events if e.event_type_value == "STEP_FAILURE"][0].event_specific_data.error
    assert "garhc" in err.to_string() + (err.cause.to_string() if err.cause else "")
