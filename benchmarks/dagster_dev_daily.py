"""The scheduled daily run in `dagster dev` (prints figures; asserts nothing).

    python benchmarks/pipeline.py --only e --keep          # builds a 5-year warehouse, prints its folder
    python benchmarks/dagster_dev_daily.py --warehouse /tmp/bench_pipeline_xxx/e_sqlite --date 2026-01-02

Starts `dagster dev` (webserver + daemon) on that warehouse's SQLite instance, then launches the
`trading_cycle` job for one session exactly as the `daily_close` schedule's RunRequest does (tags
dagster/partition and trading/source=schedule, no run config: the whole universe), --repeat times, and
prints per run: launch -> end (the queue, the run worker's process start and code import, the run),
the run's own start -> end from the instance, and each step's duration (medians over the runs).
dagster dev is stopped at the end (its whole process group).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trading_assets_tests.ops.conftest import DagsterDev  # noqa: E402
from trading_assets_tests.ops.test_queue import LAUNCH, location, run_state  # noqa: E402


def launch_like_the_schedule(dev: DagsterDev, session: str) -> str:
    loc, repo = location(dev)
    params = {
        "selector": {"repositoryLocationName": loc, "repositoryName": repo, "jobName": "trading_cycle"},
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": session},
                                       {"key": "trading/source", "value": "schedule"}]},
    }
    out = dev.graphql(LAUNCH, {"p": params})["launchRun"]
    if out["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(out)
    return out["run"]["runId"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--warehouse", type=Path, required=True, help="folder with data/ and dagster_home/ (pipeline.py --keep)")
    p.add_argument("--date", required=True, help="the session to run (the one after the warehouse's last)")
    p.add_argument("--history-start", default="2021-01-04")
    p.add_argument("--universe", type=Path, help="the universe file of the warehouse (default: the packaged one)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)

    import dagster as dg

    dev = DagsterDev(args.warehouse)
    dev.env["TRADING_HISTORY_START"] = args.history_start
    if args.universe:
        dev.env["TRADING_UNIVERSE"] = str(args.universe)
    t0 = time.perf_counter()
    dev.start(timeout=600)
    print(f"dagster dev up in {time.perf_counter() - t0:.1f} s ({dev.url}, DAGSTER_HOME={dev.home})")
    launch_to_end, run_s, steps = [], [], {}
    try:
        for _ in range(args.repeat):
            t = time.perf_counter()
            run_id = launch_like_the_schedule(dev, args.date)
            while run_state(dev, run_id)["status"] not in ("SUCCESS", "FAILURE", "CANCELED"):
                time.sleep(0.1)
            launch_to_end.append(time.perf_counter() - t)
            state = run_state(dev, run_id)
            if state["status"] != "SUCCESS":
                raise RuntimeError(f"run {run_id}: {state['status']}\n{dev.tail()}")
            run_s.append(state["endTime"] - state["startTime"])
            import os

            os.environ["DAGSTER_HOME"] = str(dev.home)
            with dg.DagsterInstance.from_config(str(dev.home)) as instance:
                for s in instance.get_run_step_stats(run_id):
                    steps.setdefault(s.step_key, []).append((s.end_time or 0) - (s.start_time or 0))
            print(f"  run {run_id}: launch -> end {launch_to_end[-1]:.1f} s, run {run_s[-1]:.1f} s")
    finally:
        dev.stop()
    print(f"scheduled daily run in dagster dev ({args.date}): launch -> end median {statistics.median(launch_to_end):.2f} s, "
          f"run median {statistics.median(run_s):.2f} s over {args.repeat}")  # fmt: skip
    med = sorted(((k, statistics.median(v)) for k, v in steps.items()), key=lambda kv: -kv[1])
    print("  step medians (s): " + ", ".join(f"{k} {v:.2f}" for k, v in med))
    return 0


if __name__ == "__main__":
    sys.exit(main())
