"""Speed of the evaluation assets `labels` and `signal_quality` on the real S&P 500 folder (prints figures,
asserts nothing). Issue #11's targets: together they add <= 10% to the 5-year backfill and < 0.5 s to a
daily cycle.

    python benchmarks/evaluation.py --workdir /tmp/eval          # backfill through Dagster (minutes), then (2) (3)
    python benchmarks/evaluation.py --reuse /tmp/eval            # (1) from that run's instance, (2) (3) again

(1) the backfill: `trading-cycle --source local --data-dir ../shared/data/prices --data-dir
    ../shared/data/benchmark/spy_1993_2018.parquet --universe ../shared/data/sp500_sectors_2018.parquet
    --start 2013-02-08 --end 2018-02-07` (whole graph, one run, TRADING_HISTORY_START = start) and each
    step's duration from the Dagster instance: labels + signal_quality against the rest of the run.
(1b) --remeasure: the two assets alone through Dagster on that warehouse (one run over the 5 years, then
    one run of the last session, each --repeat times, medians), with the CURRENT code: their step times
    against the rest of the backfill (its steps other than the evaluation assets'), and a daily partition.
(2) the two asset bodies again on that warehouse, outside Dagster (same code, a stand-in context), the
    median of --repeat runs: over the whole 5-year window (a backfill) and over the last session alone (the
    daily cycle), signal_quality split into compute+write and the table+picture metadata.
(3) the one-off import of matplotlib and the plot modules in a fresh process (a daily cycle pays it once,
    shared with performance's plots).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
DATA = [SHARED / "prices", SHARED / "benchmark" / "spy_1993_2018.parquet"]
UNIVERSE = SHARED / "sp500_sectors_2018.parquet"
START, END = date(2013, 2, 8), date(2018, 2, 7)
EVALUATION = ("labels", "signal_quality")


def backfill(workdir: Path) -> str:
    data, home = workdir / "data", workdir / "dagster_home"
    data.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADING_", "DAGSTER_"))}
    env.update({"TRADING_DATA_DIR": str(data), "DAGSTER_HOME": str(home), "TRADING_HISTORY_START": START.isoformat(), "PYTHONPATH": str(ROOT)})
    cmd = [sys.executable, "-m", "trading_assets.cli", "--source", "local", "--universe", str(UNIVERSE),
           "--start", START.isoformat(), "--end", END.isoformat()]  # fmt: skip
    for p in DATA:
        cmd += ["--data-dir", str(p)]
    print("running:", " ".join(cmd), file=sys.stderr)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    (workdir / "run.log").write_text(proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"the backfill failed ({proc.returncode}); log: {workdir / 'run.log'}\n{proc.stdout[-3000:]}")
    out = json.loads(proc.stdout)
    out["wall_seconds"] = time.perf_counter() - t0
    (workdir / "run.json").write_text(json.dumps(out, indent=2))
    return out["run_id"]


def step_times(workdir: Path, run_id: str) -> tuple[float, dict[str, float]]:
    os.environ["DAGSTER_HOME"] = str(workdir / "dagster_home")
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_stats(run_id)
        steps = {s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(run_id)}
    return (run.end_time or 0) - (run.start_time or 0), steps


class _Run:
    def __init__(self, start: date, end: date):
        self.run_id = "bench-evaluation"
        self.tags = {"dagster/asset_partition_range_start": start.isoformat(), "dagster/asset_partition_range_end": end.isoformat()}


class Context:
    """What the two asset bodies use of Dagster's context."""

    def __init__(self, start: date, end: date):
        import logging

        from trading_assets.domain import calendar

        self.partition_keys = [d.isoformat() for d in calendar.sessions(start, end)]
        self.run = _Run(start, end)
        self.log = logging.getLogger("bench")
        self.added: dict = {}

    def add_asset_metadata(self, metadata, partition_key=None, asset_key=None):
        self.added.update(metadata)


def remeasure(workdir: Path, repeat: int) -> dict[str, float]:
    """Median step seconds of labels and signal_quality materialized alone through Dagster (same
    instance as the backfill): over the 5-year window, and over the last session."""
    import dagster as dg

    os.environ.update({"TRADING_DATA_DIR": str(workdir / "data"), "TRADING_HISTORY_START": START.isoformat(),
                       "TRADING_UNIVERSE": str(UNIVERSE), "DAGSTER_HOME": str(workdir / "dagster_home")})  # fmt: skip
    from trading_assets.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey(k) for k in EVALUATION})
    out: dict[str, list[float]] = {}
    with dg.DagsterInstance.get() as instance:
        for label, (start, end) in (("window", (START, END)), ("daily", (END, END))):
            for _ in range(repeat if label == "daily" else max(1, repeat // 2)):
                kw = {"partition_key": end.isoformat()} if start == end else {"tags": {
                    "dagster/asset_partition_range_start": start.isoformat(), "dagster/asset_partition_range_end": end.isoformat()}}  # fmt: skip
                result = job.execute_in_process(instance=instance, raise_on_error=True, **kw)
                stats = {s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(result.run_id)}
                for k in EVALUATION:
                    out.setdefault(f"{label}:{k}", []).append(stats.get(k, float("nan")))
    return {k: statistics.median(v) for k, v in out.items()}


def time_bodies(workdir: Path, repeat: int) -> dict:
    """Median seconds of each body over the whole window and over the last session."""
    os.environ.update({"TRADING_DATA_DIR": str(workdir / "data"), "TRADING_HISTORY_START": START.isoformat(),
                       "TRADING_UNIVERSE": str(UNIVERSE)})  # fmt: skip
    from trading_assets.defs import labels as labels_defs
    from trading_assets.defs import signal_quality as sq_defs
    from trading_assets.defs.resources import PipelineConfig, WarehouseResource
    from trading_assets.settings import load_settings
    from trading_assets.store.warehouse import share_database, unshare_database

    s = load_settings()
    wh_res, pipe = WarehouseResource(db_path=str(s.db_path), audit_dir=str(s.audit_dir)), PipelineConfig()
    bodies = {"labels": labels_defs.labels.op.compute_fn.decorated_fn, "signal_quality": sq_defs.signal_quality.op.compute_fn.decorated_fn}
    out: dict[str, list[float]] = {}
    share_database(s.db_path)  # as inside a run (the warehouse resource shares one open database)
    try:
        for label, (start, end) in (("window", (START, END)), ("daily", (END, END))):
            for _ in range(repeat):
                for name, fn in bodies.items():
                    ctx = Context(start, end)
                    t0, c0 = time.perf_counter(), time.process_time()
                    result = fn(ctx, warehouse=wh_res, pipeline=pipe)
                    out.setdefault(f"{label}:{name}", []).append(time.perf_counter() - t0)
                    out.setdefault(f"{label}:{name}:cpu", []).append(time.process_time() - c0)
                    if name == "signal_quality":
                        out.setdefault(f"{label}:signal_quality:metadata", []).append(ctx.added.get("plot_seconds", 0.0))
                        out.setdefault(f"{label}:signal_quality:rows", []).append(result.metadata["rows"])
    finally:
        unshare_database(s.db_path)
    return {k: statistics.median(v) for k, v in out.items()}


def import_cost() -> float:
    code = ("import time; t = time.perf_counter(); import trading_assets.reporting.signal_plots, trading_assets.reporting.plots; "
            "print(time.perf_counter() - t)")  # fmt: skip
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout)
            for _ in range(3)]  # fmt: skip
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--workdir", type=Path, help="run the backfill into this folder, then time")
    g.add_argument("--reuse", type=Path, help="a folder a previous --workdir run filled")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--remeasure", action="store_true", help="also run the two assets alone through Dagster (1b)")
    args = p.parse_args(argv)
    workdir = args.workdir or args.reuse
    if args.workdir:
        run_id = backfill(workdir)
    else:
        run_id = json.loads((workdir / "run.json").read_text())["run_id"]
    total, steps = step_times(workdir, run_id)
    evaluation = sum(v for k, v in steps.items() if k.split("[")[0] in EVALUATION)
    others = sum(v for k, v in steps.items() if k.startswith("performance"))
    rest = total - evaluation - others  # the run without any evaluation asset
    print(f"(1) 5-year real-data backfill {START}..{END} through Dagster, run {run_id}: {total:.1f} s")
    for k in sorted(steps, key=lambda k: -steps[k])[:8]:
        print(f"      {k:<40} {steps[k]:7.1f} s")
    for k in EVALUATION:
        print(f"    {k:<20} {steps.get(k, float('nan')):6.2f} s")
    print(f"    labels + signal_quality {evaluation:.2f} s = {100 * evaluation / rest:.2f}% of the run without the evaluation "
          f"assets ({rest:.1f} s); target <= 10%: {evaluation <= 0.10 * rest}")  # fmt: skip
    if args.remeasure:
        r = remeasure(workdir, args.repeat)
        now = r["window:labels"] + r["window:signal_quality"]
        print(f"(1b) the two assets alone through Dagster with the current code, medians: window labels {r['window:labels']:.2f} s, "
              f"signal_quality {r['window:signal_quality']:.2f} s = {100 * now / rest:.2f}% of the backfill without evaluation "
              f"({rest:.1f} s); daily labels {r['daily:labels']:.3f} s, signal_quality {r['daily:signal_quality']:.3f} s")  # fmt: skip
    t = time_bodies(workdir, args.repeat)
    print(f"(2) asset bodies outside Dagster, median of {args.repeat}:")
    for label in ("window", "daily"):
        both = t[f"{label}:labels"] + t[f"{label}:signal_quality"]
        print(f"    {label:<6}: labels {t[f'{label}:labels']:.3f} s ({t[f'{label}:labels:cpu']:.3f} s CPU), signal_quality "
              f"{t[f'{label}:signal_quality']:.3f} s ({t[f'{label}:signal_quality:cpu']:.3f} s CPU; of which table + picture "
              f"metadata {t[f'{label}:signal_quality:metadata']:.3f} s wall; {int(t[f'{label}:signal_quality:rows'])} rows); "
              f"both {both:.3f} s wall")  # fmt: skip
    daily = t["daily:labels"] + t["daily:signal_quality"]
    cpu = t["daily:labels:cpu"] + t["daily:signal_quality:cpu"]
    print(f"    daily target < 0.5 s: {daily < 0.5} (wall {daily:.3f} s at load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; CPU {cpu:.3f} s)")
    print(f"(3) import of matplotlib + reporting plots in a fresh process (once per cycle, shared with performance): {import_cost():.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
