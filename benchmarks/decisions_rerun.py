"""Re-decide a finished run with other Meta-Brain / book settings, keeping its features, labels, trained
models and agent outputs: copies the workdir, then materializes meta_decisions and everything downstream
of it (the book, cycle summary, signal quality, performance) over the same range in one run.

    python benchmarks/decisions_rerun.py --from /tmp/dq --to /tmp/dq-nocal \
        --base-settings '{"models": {"first_training": "2015-01-02"}}' --settings '{"meta": {"calibrate": false}}'
    python benchmarks/learned_walk_forward.py --reuse /tmp/dq-nocal

Used for the Meta-Brain calibration's before/after on the same agents (issue #12). The base settings are
the run's: TRADING_* as benchmarks/decision_quality.py sets them, plus --base-settings (the JSON the run had).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="src", type=Path, required=True)
    ap.add_argument("--to", dest="dst", type=Path, required=True)
    ap.add_argument("--start", default="2013-02-08")
    ap.add_argument("--end", default="2018-02-07")
    ap.add_argument("--base-settings", default="{}", help="the settings JSON the original run had")
    ap.add_argument("--settings", default="{}", help="what changes")
    ap.add_argument("--from-asset", default="meta_decisions", help="re-run this asset and everything downstream (e.g. agent_outputs)")
    ap.add_argument("--universe", type=Path, default=SHARED / "sp500_sectors_2018.parquet")
    ap.add_argument("--data-dir", action="append", type=Path)
    a = ap.parse_args()
    if a.dst.exists():
        shutil.rmtree(a.dst)
    shutil.copytree(a.src, a.dst, ignore=shutil.ignore_patterns("*.runlock", "logs"))
    data = a.dst / "data"
    dirs = a.data_dir or [SHARED / "prices", SHARED / "benchmark" / "spy_1993_2018.parquet"]
    os.environ.update({"TRADING_DATA_DIR": str(data), "DAGSTER_HOME": str(a.dst / "dagster_home"), "TRADING_HISTORY_START": a.start,
                       "TRADING_PROVIDERS": "local", "TRADING_LOCAL_DATA_DIR": os.pathsep.join(str(d) for d in dirs),
                       "TRADING_UNIVERSE": str(a.universe)})  # fmt: skip
    import dagster as dg

    from trading_assets.definitions import defs
    from trading_assets.defs.resources import PipelineConfig, WarehouseResource

    overrides = merge(json.loads(a.base_settings), json.loads(a.settings))
    if overrides.get("meta", {}).get("calibrate") is False:  # an uncalibrated rerun writes no factors: drop the copied ones
        import duckdb

        with duckdb.connect(str(data / "trading.duckdb")) as con:
            if con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'agent_calibration'").fetchone()[0]:
                con.execute("DELETE FROM agent_calibration")
    resources = {"warehouse": WarehouseResource(db_path=str(data / "trading.duckdb"), audit_dir=str(data / "audit")),
                 "pipeline": PipelineConfig(settings_overrides=overrides)}  # fmt: skip
    assets = [x for x in defs.assets if isinstance(x, dg.AssetsDefinition)]
    checks = list(defs.asset_checks or [])
    sel = dg.AssetSelection.assets(a.from_asset).downstream()
    result = dg.materialize([*assets, *checks], selection=sel, resources=resources,
                            tags={"dagster/asset_partition_range_start": a.start, "dagster/asset_partition_range_end": a.end},
                            instance=dg.DagsterInstance.get(), raise_on_error=False)  # fmt: skip
    print("success" if result.success else f"FAILED: {[e.step_key for e in result.all_events if e.event_type_value == 'STEP_FAILURE']}")
    stats = dg.DagsterInstance.get().get_run_step_stats(result.run_id)
    print(", ".join(f"{s.step_key} {(s.end_time or 0) - (s.start_time or 0):.1f} s" for s in sorted(stats, key=lambda s: -((s.end_time or 0) - (s.start_time or 0)))))


if __name__ == "__main__":
    main()
