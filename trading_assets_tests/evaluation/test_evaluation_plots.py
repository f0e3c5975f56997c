"""evaluation_plots and the draw_evaluation_plots sensor through real Dagster runs on the synthetic market
(a persistent instance): a range run draws its last session (and performance / signal_quality attach
their own pictures there); a single-session run of the daily job draws nothing and the sensor asks for one
run of evaluation_plots for that session with the run's resources; that run writes the pictures (metadata
and PNG files, byte-identical to drawing from the tables) and is never asked for again."""

from __future__ import annotations

import base64
import re

import dagster as dg
import pytest

from trading_assets_tests.reliability.conftest import HISTORY_START, SHORT, SYMBOLS, _definitions_from, _environment, trading_env

PNG = b"\x89PNG\r\n\x1a\n"
NAMES = {"nav_vs_benchmarks", "monthly_returns", "signal_quality"}


def _png(md: str) -> bytes:
    m = re.fullmatch(r"!\[[^\]]+\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md)
    assert m, md[:200]
    return base64.b64decode(m.group(1))


def _latest(instance, asset: str, partition: str):
    recs = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    return recs[0] if recs else None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("plots")
    data = root / "data"
    with _environment(trading_env(root)):
        definitions = _definitions_from(HISTORY_START)
        from trading_assets.defs import automation
        from trading_assets.defs.resources import PipelineConfig, WarehouseResource

        resources = {"warehouse": WarehouseResource(db_path=str(data / "trading.duckdb"), audit_dir=str(data / "audit")),
                     "pipeline": PipelineConfig()}
        defs = dg.Definitions(assets=definitions.all_assets, asset_checks=[*definitions.all_checks, *automation.CHECKS], resources=resources,
                              jobs=[automation.TRADING_CYCLE_JOB, automation.EVALUATION_PLOTS_JOB])
        config = {"resources": {"pipeline": {"config": {"symbols": list(SYMBOLS)}}}}
        (root / "home").mkdir()
        instance = dg.DagsterInstance.local_temp(str(root / "home"))
        rng = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, run_config=config, raise_on_error=True,
            tags={"dagster/asset_partition_range_start": SHORT[0].isoformat(), "dagster/asset_partition_range_end": SHORT[-2].isoformat()})
        day = defs.resolve_job_def(automation.TRADING_CYCLE_JOB_NAME).execute_in_process(
            instance=instance, run_config=config, partition_key=SHORT[-1].isoformat(), raise_on_error=True)
        request = automation.plots_request(instance, instance.get_run_by_id(day.run_id))
        plots = None
        if isinstance(request, dg.RunRequest):
            plots = defs.resolve_job_def(automation.EVALUATION_PLOTS_JOB_NAME).execute_in_process(
                instance=instance, run_config=request.run_config, partition_key=request.partition_key, tags=request.tags,
                raise_on_error=True)
        yield {"root": root, "instance": instance, "automation": automation, "range": rng, "day": day, "request": request,
               "plots": plots, "resources": resources}
        instance.dispose()


def test_a_range_run_draws_its_last_session(runs):
    inst, last = runs["instance"], SHORT[-2].isoformat()
    rec = _latest(inst, "evaluation_plots", last)
    assert rec is not None and rec.run_id == runs["range"].run_id
    md = rec.asset_materialization.metadata
    assert {k for k in md if k in NAMES} == NAMES and all(_png(md[k].value)[:8] == PNG for k in NAMES)
    assert "plots" in _latest(inst, "performance", last).asset_materialization.metadata  # its own, as before
    assert "rolling_rank_ic_plot" in _latest(inst, "signal_quality", last).asset_materialization.metadata
    # only the last session carries pictures
    first = _latest(inst, "evaluation_plots", SHORT[0].isoformat())
    assert first is not None and not (NAMES & set(first.asset_materialization.metadata))
    assert isinstance(runs["automation"].plots_request(inst, inst.get_run_by_id(runs["range"].run_id)), dg.SkipReason)


def test_a_daily_run_does_not_draw_and_the_sensor_asks_once(runs):
    inst, day, automation = runs["instance"], SHORT[-1].isoformat(), runs["automation"]
    perf = _latest(inst, "performance", day).asset_materialization.metadata
    sq = _latest(inst, "signal_quality", day).asset_materialization.metadata
    assert "plots" not in perf and "evaluation_plots" in perf["pictures"].value
    assert "rolling_rank_ic_plot" not in sq and "latest" in sq  # the table stays
    req = runs["request"]
    assert isinstance(req, dg.RunRequest)
    assert req.partition_key == day and req.run_key == f"plots-{runs['day'].run_id}"
    assert req.run_config == {"resources": inst.get_run_by_id(runs["day"].run_id).run_config["resources"]}
    # the sensor itself, evaluated on the run's success event, asks for the same run
    run = inst.get_run_by_id(runs["day"].run_id)
    event = next(e for e in inst.all_logs(run.run_id) if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_SUCCESS")
    ctx = dg.build_run_status_sensor_context(sensor_name=automation.PLOTS_SENSOR_NAME, dagster_instance=inst,
                                             dagster_run=run, dagster_event=event.dagster_event)
    out = automation.draw_evaluation_plots(ctx)
    assert isinstance(out, dg.RunRequest) and out.run_key == req.run_key
    # and nothing is asked for the plots run itself
    assert isinstance(automation.plots_request(inst, inst.get_run_by_id(runs["plots"].run_id)), dg.SkipReason)


def test_the_plots_run_writes_the_pictures_equal_to_drawing_from_the_tables(runs):
    from datetime import date

    from trading_assets.defs.evaluation_plots import draw

    inst, day = runs["instance"], SHORT[-1].isoformat()
    rec = _latest(inst, "evaluation_plots", day)
    assert rec is not None and rec.run_id == runs["plots"].run_id
    md = rec.asset_materialization.metadata
    expected = draw(runs["resources"]["warehouse"].get(), date.fromisoformat(day), "SPY")
    assert set(expected) == NAMES
    for name in NAMES:
        assert _png(md[name].value) == expected[name]  # deterministic bytes
        assert (runs["root"] / "data" / "plots" / day / f"{name}.png").read_bytes() == expected[name]
