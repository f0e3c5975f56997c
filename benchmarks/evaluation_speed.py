"""What the evaluation assets (performance, signal_quality; labels shown too) cost (prints figures).

    python benchmarks/evaluation_speed.py --workdir /tmp/decision_quality [--repeat 3]

Needs a finished real-data backfill in WORKDIR (benchmarks/decision_quality.py's run: run.json, data/,
dagster_home/). Prints:
1. the backfill: each evaluation step's duration and their share of the Dagster run (target: <= 10%);
2. a daily cycle: `trading-cycle --date <last session> [--settings JSON]` on that 5-year warehouse,
   REPEAT times (the session is rewritten with identical rows): the run's duration and each evaluation
   step's (checks included), medians (target: the three < 0.5 s);
3. the performance body without Dagster on the same warehouse, medians of 5 warm calls: compute and
   write (write_performance), the two plots; and matplotlib's import in a fresh process (paid once per
   run process when the plots are drawn).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))
from decision_quality import DEFAULT_DATA, DEFAULT_UNIVERSE, step_times  # noqa: E402

EVALUATION = ("performance", "signal_quality", "labels")


def _eval_steps(steps: list[tuple[str, float]]) -> dict[str, float]:
    """Evaluation assets and their checks (step keys start with the asset name)."""
    out: dict[str, float] = {}
    for k, t in steps[1:]:
        for a in EVALUATION:
            if k == a or k.startswith(a + "_"):
                out[a] = out.get(a, 0.0) + t
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/decision_quality"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--settings", help="settings overrides (JSON) for the daily cycles: those of the backfill")
    args = p.parse_args()
    run = json.loads((args.workdir / "run.json").read_text())
    steps = step_times(args.workdir, run["run_id"])
    ev = _eval_steps(steps)
    total = steps[0][1]
    print(f"1. backfill {run['window']['start']} .. {run['window']['end']}: Dagster run {total:.1f} s; "
          + ", ".join(f"{k} {v:.1f} s ({100 * v / total:.1f}%)" for k, v in ev.items())
          + f"; performance + signal_quality {100 * (ev.get('performance', 0) + ev.get('signal_quality', 0)) / total:.1f}% "
            "of the run (target <= 10%)")

    day = run["window"]["end"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADING_", "DAGSTER_"))}
    env.update({"TRADING_DATA_DIR": str(args.workdir / "data"), "DAGSTER_HOME": str(args.workdir / "dagster_home"),
                "TRADING_HISTORY_START": run["window"]["start"], "PYTHONPATH": str(ROOT)})
    cmd = [sys.executable, "-m", "trading_assets.cli", "--source", "local", "--universe", str(DEFAULT_UNIVERSE),
           "--date", day]
    for d in DEFAULT_DATA:
        cmd += ["--data-dir", str(d)]
    if args.settings:
        cmd += ["--settings", args.settings]
    runs = []
    for _ in range(args.repeat):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"daily run failed:\n{proc.stderr[-3000:]}")
        s = step_times(args.workdir, json.loads(proc.stdout)["run_id"])
        runs.append((s[0][1], _eval_steps(s)))
    med = lambda xs: statistics.median(xs)  # noqa: E731
    print(f"2. daily cycle {day} on the 5-year warehouse, median of {args.repeat}: run {med([r for r, _ in runs]):.2f} s; "
          + ", ".join(f"{a} {med([e.get(a, 0.0) for _, e in runs]):.3f} s" for a in EVALUATION)
          + f"; the three {med([sum(e.values()) for _, e in runs]):.3f} s (target < 0.5 s; the pictures are drawn after "
            "the run by evaluation_plots, not timed here)")

    from datetime import date

    from trading_assets.defs import performance as perf_defs
    from trading_assets.settings import load_settings
    from trading_assets.store.warehouse import Warehouse

    os.environ.update({k: v for k, v in env.items() if k.startswith("TRADING_")})
    settings = load_settings()
    wh = Warehouse(settings.db_path, settings.audit_dir)
    sessions = [date.fromisoformat(day)]
    writes, plots = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        w = perf_defs.write_performance(wh, settings, sessions, "bench")
        t1 = time.perf_counter()
        perf_defs.plots_markdown(w.daily, "SPY")
        plots.append(time.perf_counter() - t1)
        writes.append(t1 - t0)
    imp = subprocess.run([sys.executable, "-c", "import time, polars; t = time.perf_counter(); "
                          "import trading_assets.reporting.plots; print(time.perf_counter() - t)"],
                         env=env, capture_output=True, text=True)
    print(f"3. without Dagster, one session on the 5-year warehouse, median of 5: write_performance {med(writes):.3f} s "
          f"(own DuckDB connections: a run shares one), plots {med(plots):.3f} s; importing the plots module "
          f"(matplotlib) in a fresh process {float(imp.stdout.strip() or 'nan'):.3f} s")


if __name__ == "__main__":
    main()
