"""The batched SQLite event log records exactly what Dagster's stock SQLite event log records."""

import os

import dagster as dg
import pytest

PARTS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-11")


@dg.asset(partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.single_run())
def upstream(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"n": len(context.partition_keys)})


@dg.asset(partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.single_run(), deps=[upstream])
def downstream(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"n": len(context.partition_keys)})


@dg.asset_check(asset=downstream, blocking=True)
def downstream_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _run(home, batched: bool):
    os.makedirs(home, exist_ok=True)
    if batched:
        with open(os.path.join(home, "dagster.yaml"), "w") as fh:
            fh.write("event_log_storage:\n  module: trading_assets.instance_storage\n  class: BatchedSqliteEventLogStorage\n")
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage).__name__ == ("BatchedSqliteEventLogStorage" if batched else "SqliteEventLogStorage")
        result = dg.materialize(
            [upstream, downstream, downstream_ok],
            instance=instance,
            tags={"dagster/asset_partition_range_start": "2024-01-02", "dagster/asset_partition_range_end": "2024-01-09"},
        )
        assert result.success
        summary = {}
        for key in ("upstream", "downstream"):
            records = instance.fetch_materializations(dg.AssetKey(key), limit=100).records
            summary[key] = (
                sorted(instance.get_materialized_partitions(dg.AssetKey(key))),
                sorted((r.partition_key, r.asset_materialization.metadata["n"].value) for r in records),
            )
        # the asset index: the latest materialization and run of each asset, the event tags
        for key in ("upstream", "downstream"):
            rec = instance.get_asset_records([dg.AssetKey(key)])[0].asset_entry
            last = rec.last_materialization_record
            summary[f"{key}_entry"] = (last.partition_key, last.asset_materialization.metadata["n"].value,
                                       last.run_id == result.run_id, rec.last_run_id == result.run_id)  # fmt: skip
            summary[f"{key}_tags"] = sorted(
                (t.get("dagster/partition"), t.get("dagster/code_version") is not None)
                for t in [r.asset_materialization.tags or {} for r in instance.fetch_materializations(dg.AssetKey(key), limit=100).records]
            )
        events = instance.all_logs(result.run_id)
        summary["event_types"] = sorted(e.dagster_event.event_type_value for e in events if e.dagster_event)
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key([dg.AssetCheckKey(dg.AssetKey("downstream"), "downstream_ok")])
        summary["check"] = [v.status.value for v in check.values()]
    return summary


def test_batched_storage_records_the_same_events_as_stock_sqlite(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    stock = _run(tmp_path / "stock", batched=False)
    batched = _run(tmp_path / "batched", batched=True)
    assert batched == stock
    parts, mats = batched["downstream"]
    assert parts == [f"2024-01-0{d}" for d in range(2, 10)]
    assert len(mats) == 8
    assert batched["check"] == ["SUCCEEDED"]
    assert batched["event_types"].count("ASSET_MATERIALIZATION") == 16
    # the latest materialization recorded per asset is the run's last partition
    assert batched["downstream_entry"] == ("2024-01-09", 8, True, True)


@pytest.mark.parametrize("batch_size", ["0", "3"])
def test_batched_storage_with_small_or_no_batches(tmp_path, monkeypatch, batch_size):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch_size)
    summary = _run(tmp_path / "b", batched=True)
    assert len(summary["downstream"][1]) == 8
