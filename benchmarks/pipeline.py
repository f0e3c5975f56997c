"""Speed of the whole pipeline on the synthetic market (prints figures; asserts nothing).

    python benchmarks/pipeline.py                 # (a) (b) (c) (d) as in issue #6
    python benchmarks/pipeline.py --only a,c      # a subset
    python benchmarks/pipeline.py --symbols 50 --years 1 --big-symbols 200   # a quick smoke run

(a) the whole backfill, N years x 250 symbols, through Dagster in ONE run (`trading-cycle --start
    --end`, the CLI's in-process single-run range), on a PostgreSQL instance with
    DAGSTER_EVENT_BATCH_SIZE=1000 and on the default SQLite instance;
(b) the same asset and check bodies (domain code + DuckDB I/O) called in graph order WITHOUT Dagster:
    no instance, no event log, no run -- what Dagster costs is (a) minus (b);
(c) one daily cycle through Dagster (the session after the backfill, on the backfilled warehouse);
(e) the operator's figures, on the default SQLite instance (the quick start's): `trading-cycle --date D`
    on the N-year warehouse of (a), wall time from process start to the printed JSON (the process's
    exit), median of --repeat runs, each step's median time (what each asset adds to the daily
    cycle); and `trading-cycle --test` the same way (in its own data folder). `--warehouse DIR`
    reuses a warehouse built before (DIR/data, DIR/dagster_home) instead of a fresh backfill.
    The warehouse is a backfill with the DEFAULT settings: the learned families (LightGBM, ridge) and the
    deep shadows (RankNet, Transformer) train during it and serve D; D is the session after the
    warehouse's last one (2026-01-02 for the 5 years to 2025-12-31), which is not a model cadence session
    (a cadence session retrains the models and recomputes the Meta-Brain's calibration factors: a
    different figure, see docs/OPERATIONS.md). The printout says which model versions served D.
(d) 2,000 symbols x N years through Dagster on PostgreSQL, with the run process's peak RSS and its
    memory timeline: VmRSS sampled every 0.25 s, cut by the run's step start/end times into each step's
    RSS at start -> peak -> end (which step holds the peak; what a step leaves to the next).

Each Dagster measurement is a fresh `trading-cycle` process: "wall" includes Python start-up and the
code import; "run" is the Dagster run's own start-to-end from the instance. A throw-away PostgreSQL
server (initdb + pg_ctl on a free loopback port) is started and stopped here; without the binaries
the PostgreSQL figures are skipped with a message.
Targets on a 2-core machine: (a) PostgreSQL <= 45 s and <= 2 x (b); (c) <= 5 s; (d) <= 8 x (a) and
peak RSS <= 4 GB; (e) daily cycle <= 5 s and --test <= 10 s from process start (medians).
"""

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trading_assets.domain import calendar  # noqa: E402
from trading_assets.settings import DEFAULT_UNIVERSE_FILE  # noqa: E402

VENV_BIN = Path(sys.executable).parent
SECTORS = ["Information Technology", "Health Care", "Financials", "Consumer Discretionary", "Industrials",
           "Communication Services", "Consumer Staples", "Energy", "Utilities", "Real Estate", "Materials"]  # fmt: skip


def window(years: int, end: date | None = None) -> tuple[date, date]:
    end = end or calendar.last_session_on_or_before(date(date.today().year - 1, 12, 31))
    start = calendar.sessions(date(end.year - years + 1, 1, 1), end)[0]
    return start, end


def universe_file(n: int, folder: Path) -> Path:
    """The packaged universe's first n symbols, topped up with synthetic tickers (S0001 ...) when n is larger."""
    with open(DEFAULT_UNIVERSE_FILE, newline="") as fh:
        rows = [r for r in csv.DictReader(fh)]
    bench = [r for r in rows if r["symbol"] == "SPY"]
    names = [r for r in rows if r["symbol"] != "SPY"][:n]
    i = 0
    while len(names) < n:
        i += 1
        names.append({"symbol": f"S{i:04d}", "name": f"Synthetic {i}", "sector": SECTORS[i % len(SECTORS)]})
    path = folder / f"universe_{n}.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["symbol", "name", "sector"])
        w.writeheader()
        for r in names + bench:
            w.writerow({k: r[k] for k in ("symbol", "name", "sector")})
    return path


def cli_env(folder: Path, start: date, universe: Path, pg_url: str | None) -> dict[str, str]:
    from trading_assets_tests.ops.conftest import make_home

    home = make_home(folder / "dagster_home", ROOT / ("deploy/dagster-postgres.yaml" if pg_url else "dagster.yaml"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADING_", "DAGSTER_"))}
    env.update(
        TRADING_DATA_DIR=str(folder / "data"),
        TRADING_HISTORY_START=start.isoformat(),
        TRADING_PROVIDERS="synthetic",
        TRADING_UNIVERSE=str(universe),
        DAGSTER_HOME=str(home),
        DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS="true",
        DAGSTER_EVENT_BATCH_SIZE="1000",
    )
    if pg_url:
        env["DAGSTER_POSTGRES_URL"] = pg_url
    (folder / "data").mkdir(parents=True, exist_ok=True)
    return env


def _vm_rss_mb(pid: int) -> float | None:
    """VmRSS of a live process in MB (None once it has exited: a zombie's status has no VmRSS line)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class RssSampler:
    """Samples a child's VmRSS every `period` s on a thread: a list of (epoch seconds, MB), the clock the
    instance's step stats use, so each step's memory can be read off the run's own step times."""

    def __init__(self, pid: int, period: float = 0.25):
        import threading

        self.pid, self.period, self.samples = pid, period, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            mb = _vm_rss_mb(self.pid)
            if mb is not None:
                self.samples.append((time.time(), mb))
            self._stop.wait(self.period)

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def rss_by_step(samples: list[tuple[float, float]], stats: dict[str, tuple[float, float]]) -> list[dict]:
    """Per step (in start order): peak RSS over the samples inside [start, end] and the RSS at its start
    and end (the last sample at or before each time: the memory the step found and the memory it left)."""
    import bisect

    times = [t for t, _ in samples]

    def at(t: float) -> float | None:
        i = bisect.bisect_right(times, t) - 1
        return samples[i][1] if i >= 0 else None

    rows = []
    for key, (t0, t1) in sorted(stats.items(), key=lambda kv: kv[1][0]):
        inside = [mb for t, mb in samples if t0 <= t <= t1]
        ends = [v for v in (at(t0), at(t1)) if v is not None]
        rows.append({"step": key, "start_s": t0, "end_s": t1, "start_mb": at(t0), "end_mb": at(t1),
                     "peak_mb": max(inside + ends) if inside or ends else None})  # fmt: skip
    return rows


def run_cli_rss(args: list[str], env: dict[str, str]) -> dict:
    """One trading-cycle process: wall seconds, the run's own seconds (instance), the peak RSS of exactly
    that process (os.wait4 returns the child's own rusage; ru_maxrss is KiB on Linux), and its VmRSS
    timeline (sampled every 0.25 s) cut by the run's step times."""
    import subprocess

    import dagster as dg

    t0, t0_epoch = time.perf_counter(), time.time()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([str(VENV_BIN / "trading-cycle"), *args], env=env, cwd=env["TRADING_DATA_DIR"], stdout=out, stderr=err, text=True)
        sampler = RssSampler(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        samples = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"trading-cycle {' '.join(args)} failed ({proc.returncode}):\n{stderr[-4000:]}")
    try:
        run_id = json.loads(stdout)["run_id"]
    except (ValueError, KeyError) as exc:
        raise RuntimeError(f"trading-cycle {' '.join(args)}: unexpected output:\n{stdout[:2000]}\n{stderr[-2000:]}") from exc
    # the instance config reads these from the environment
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL") if k in env})
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        rec = instance.get_run_record_by_id(run_id)
        run_s = (rec.end_time or 0) - (rec.start_time or 0)
        # where the run's time goes: each step's own duration from the event log
        stats = {s.step_key: (s.start_time or 0, s.end_time or 0) for s in instance.get_run_step_stats(run_id)}
        # did the features step continue the stored state (incremental) or recompute from the first session?
        feats = [r for r in instance.fetch_materializations(dg.AssetKey("features"), limit=5, ascending=False).records if r.run_id == run_id]
        continued = feats[0].asset_materialization.metadata.get("symbols_continued") if feats else None
    steps = {k: e - s for k, (s, e) in stats.items()}
    return {"wall_s": wall, "run_s": run_s, "run_id": run_id, "rss_mb": usage.ru_maxrss / 1024, "steps": steps,
            # process start -> run start: imports, the instance, the run's creation; run end -> exit: the JSON
            "startup_s": (rec.start_time or t0_epoch) - t0_epoch, "features_continued": continued.value if continued else None,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "run_start": rec.start_time, "run_end": rec.end_time, "samples": samples, "rss_steps": rss_by_step(samples, stats)}  # fmt: skip


def _rss_lines(r: dict) -> list[str]:
    """The memory timeline as printed lines: each step's RSS at start -> peak -> end (MB), in run order,
    the step that holds the sampled peak, and the RSS before the first step (start-up and import)."""
    rows, samples = r.get("rss_steps") or [], r.get("samples") or []
    if not samples:
        return ["    rss timeline: no samples"]
    peak_t, peak_mb = max(samples, key=lambda s: s[1])
    where = next((row["step"] for row in rows if row["start_s"] <= peak_t <= row["end_s"]), "outside steps")
    first = rows[0]["start_s"] if rows else peak_t
    before = max((mb for t, mb in samples if t < first), default=0.0)
    f = lambda v: "?" if v is None else f"{v:.0f}"  # noqa: E731
    lines = [f"    rss timeline ({len(samples)} samples every 0.25 s): sampled peak {peak_mb:.0f} MB in {where}; "
             f"before the first step {before:.0f} MB; end of run {f(samples[-1][1])} MB"]  # fmt: skip
    lines.append("    rss per step (MB, start -> peak -> end, seconds):")
    lines += [f"      {row['step']:<58} {f(row['start_mb']):>6} -> {f(row['peak_mb']):>6} -> {f(row['end_mb']):>6}  "
              f"{row['end_s'] - row['start_s']:6.1f} s" for row in rows]  # fmt: skip
    return lines


def _top_steps(r: dict, n: int = 6) -> str:
    steps = sorted(r.get("steps", {}).items(), key=lambda kv: -kv[1])
    outside = r["run_s"] - sum(v for _, v in steps)
    return ", ".join(f"{k} {v:.1f}" for k, v in steps[:n]) + f"; outside steps {outside:.1f}"


# --- (e): wall time from process start, medians -------------------------------------------------------
def from_process_start(args: list[str], env: dict[str, str], repeat: int) -> dict:
    """`trading-cycle ARGS` run `repeat` times: each run's wall time from process start to exit (the
    JSON is the last thing it prints), the medians, and each step's median duration from the instance."""
    import statistics

    runs = [run_cli_rss(args, env) for _ in range(repeat)]
    walls = [r["wall_s"] for r in runs]
    steps: dict[str, list[float]] = {}
    for r in runs:
        for k, v in r["steps"].items():
            steps.setdefault(k, []).append(v)
    return {"walls": walls, "wall_median_s": statistics.median(walls), "run_median_s": statistics.median(r["run_s"] for r in runs),
            "startup_median_s": statistics.median(r["startup_s"] for r in runs), "features_continued": [r["features_continued"] for r in runs],
            "cpu_median_s": statistics.median(r["cpu_s"] for r in runs), "load_1min": os.getloadavg()[0],
            "step_medians": {k: statistics.median(v) for k, v in steps.items()}}  # fmt: skip


def _print_e(label: str, e: dict, target: float) -> None:
    walls = ", ".join(f"{w:.1f}" for w in e["walls"])
    print(f"(e) {label}: wall from process start median {e['wall_median_s']:.2f} s [{walls}] (target <= {target:.0f} s: "
          f"{e['wall_median_s'] <= target}); the Dagster run median {e['run_median_s']:.2f} s; process CPU (user+sys) "
          f"median {e['cpu_median_s']:.2f} s; load average {e['load_1min']:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"    process start -> run start (imports, instance, run creation) median {e['startup_median_s']:.2f} s; "
          f"features continued from the stored state for {e['features_continued']} symbols")
    steps = sorted(e["step_medians"].items(), key=lambda kv: -kv[1])
    print("    step medians (s): " + ", ".join(f"{k} {v:.2f}" for k, v in steps))


def served_models(data_dir: Path, d: date) -> str:
    """What the daily cycle at d scores: the model versions serving d (model_versions, written by that run)
    by family and role, and whether d is a model cadence session (a retrain + the Meta-Brain's calibration)."""
    import duckdb

    from trading_assets.domain.models import training
    from trading_assets.settings import ModelSettings

    cadence = "a model cadence session (retrains, recalibrates)" if training.is_training_session(d, ModelSettings()) else "not a model cadence session"
    try:
        con = duckdb.connect(str(data_dir / "trading.duckdb"), read_only=True)
        rows = con.execute("SELECT family, role, count(*) FROM model_versions WHERE date = ? AND model_version IS NOT NULL "
                           "GROUP BY ALL ORDER BY ALL", [d]).fetchall()  # fmt: skip
        con.close()
    except duckdb.Error as exc:
        return f"{d}: {cadence}; served models unknown ({exc})"
    served = ", ".join(f"{f} {r} x{n}" for f, r, n in rows) or "none (no trained version serves it)"
    return f"{d}: {cadence}; model versions served: {served}"


# --- (b): the asset and check bodies without Dagster ------------------------------------------------
class _Run:
    def __init__(self, start: date, end: date):
        self.run_id = "bench-no-dagster"
        self.tags = {"dagster/asset_partition_range_start": start.isoformat(), "dagster/asset_partition_range_end": end.isoformat()}


class _Stats:
    def __init__(self, t: float):
        self.start_time = t


class _Instance:
    def __init__(self):
        self.t0 = time.time()

    def get_run_stats(self, run_id):
        return _Stats(self.t0)


class BareContext:
    """What the asset and check bodies use of Dagster's context (partition keys, run id and tags, log)."""

    def __init__(self, start: date, end: date):
        import logging

        self.partition_keys = [d.isoformat() for d in calendar.sessions(start, end)]
        self.run = _Run(start, end)
        self.log = logging.getLogger("bench")
        self.instance = _Instance()


def run_without_dagster(env: dict[str, str], start: date, end: date) -> dict:
    """Call every asset body, then every check body, in the graph's topological order, in this process."""
    import inspect

    os.environ.update(env)
    from trading_assets.definitions import defs  # imported after the environment is set (settings at import)
    from trading_assets.defs.resources import PipelineConfig, WarehouseResource
    from trading_assets.settings import load_settings

    s = load_settings()
    resources = {"warehouse": WarehouseResource(db_path=str(s.db_path), audit_dir=str(s.audit_dir)), "pipeline": PipelineConfig()}
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    ops, seen = [], set()
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        if not node.is_executable:
            continue
        assets_def = node.assets_def
        if id(assets_def) not in seen:
            seen.add(id(assets_def))
            ops.append(assets_def)
    checks = [c for c in repo.asset_checks_defs_by_key.values()]
    timings: dict[str, float] = {}

    def call(defn, ctx) -> None:
        fn = defn.op.compute_fn.decorated_fn
        params = inspect.signature(fn).parameters
        kwargs = {p: resources[p] for p in params if p in resources}
        t = time.perf_counter()
        out = fn(ctx, **kwargs) if "context" in params else fn(**kwargs)
        if inspect.isgenerator(out):
            for _ in out:
                pass
        timings[defn.op.name] = timings.get(defn.op.name, 0.0) + time.perf_counter() - t

    t0 = time.perf_counter()
    for assets_def in ops:
        call(assets_def, BareContext(start, end))
    done = set()
    for c in checks:
        if id(c) in done or c.op.name.endswith("price_history_fresh"):  # the wall-clock check reads the instance
            continue
        done.add(id(c))
        call(c, BareContext(start, end))
    return {"total_s": time.perf_counter() - t0, "steps": timings}


# --- PostgreSQL ------------------------------------------------------------------------------------
def start_postgres():
    from trading_assets_tests.ops.conftest import PostgresServer, postgres_bin

    bindir = postgres_bin()
    if bindir is None:
        print("PostgreSQL binaries absent (apt-get install postgresql): PostgreSQL figures skipped")
        return None
    return PostgresServer(bindir).start()


def fresh_db(server, name: str) -> str:
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", port=server.port, user="dagster", dbname="postgres")
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    con.close()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--years", type=int, default=5)
    p.add_argument("--symbols", type=int, default=250)
    p.add_argument("--big-symbols", type=int, default=2000)
    p.add_argument("--only", default="a,b,c,d,e", help="comma-separated subset of a,b,c,d,e")
    p.add_argument("--repeat", type=int, default=5, help="(e): runs per median")
    p.add_argument("--warehouse", type=Path, help="(e): reuse DIR/data and DIR/dagster_home (a SQLite instance) built before")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--daily-args", default="", help="(e): more trading-cycle arguments for the daily cycle, e.g. --settings JSON")
    p.add_argument("--no-test", action="store_true", help="(e): skip the --test measurement")
    args = p.parse_args(argv)
    only = set(args.only.split(","))
    start, end = window(args.years)
    sessions = calendar.sessions(start, end)
    root = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    print(f"benchmark: {args.years} years {start}..{end} ({len(sessions)} sessions), {args.symbols} symbols "
          f"(+ SPY), synthetic market; {os.cpu_count()} cores; folder {root}")  # fmt: skip
    results: dict[str, dict] = {}
    pg = start_postgres() if only & {"a", "c", "d"} else None
    try:
        uni = universe_file(args.symbols, root)
        rng = ["--start", start.isoformat(), "--end", end.isoformat()]
        if "a" in only and pg:
            env = cli_env(root / "a_pg", start, uni, fresh_db(pg, "bench_a"))
            results["a_postgres"] = r = run_cli_rss(rng, env)
            print(f"(a) backfill through Dagster, PostgreSQL + batching: wall {r['wall_s']:.1f} s, run {r['run_s']:.1f} s, peak RSS {r['rss_mb']:.0f} MB")
            print(f"    steps (s): {_top_steps(r)}")
            if "c" in only:
                nxt = calendar.next_session(end)
                if nxt <= date.today():
                    results["c"] = c = run_cli_rss(["--date", nxt.isoformat()], env)
                    print(f"(c) one daily cycle ({nxt}) through Dagster on PostgreSQL: wall {c['wall_s']:.1f} s, run {c['run_s']:.1f} s")
                    print(f"    steps (s): {_top_steps(c)}")
        if "a" in only:
            env = cli_env(root / "a_sqlite", start, uni, None)
            results["a_sqlite"] = r = run_cli_rss(rng, env)
            print(f"(a) backfill through Dagster, SQLite instance:       wall {r['wall_s']:.1f} s, run {r['run_s']:.1f} s, peak RSS {r['rss_mb']:.0f} MB")
            print(f"    steps (s): {_top_steps(r)}")
            if "c" in only and "c" not in results:
                nxt = calendar.next_session(end)
                results["c"] = c = run_cli_rss(["--date", nxt.isoformat()], env)
                print(f"(c) one daily cycle ({nxt}) through Dagster on SQLite: wall {c['wall_s']:.1f} s, run {c['run_s']:.1f} s")
        if "e" in only:
            nxt = calendar.next_session(end)
            if args.warehouse:
                env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADING_", "DAGSTER_"))}
                # the same universe as the warehouse's backfill (universe_file is deterministic)
                env.update(TRADING_DATA_DIR=str(args.warehouse / "data"), TRADING_HISTORY_START=start.isoformat(),
                           TRADING_PROVIDERS="synthetic", DAGSTER_HOME=str(args.warehouse / "dagster_home"),
                           TRADING_UNIVERSE=str(uni))
            else:
                env = cli_env(root / "e_sqlite", start, uni, None)
                run_cli_rss(rng, env)  # the 5-year warehouse
            import shlex

            extra = shlex.split(args.daily_args)
            results["e_daily"] = e = from_process_start(["--date", nxt.isoformat(), *extra], env, args.repeat)
            _print_e(f"trading-cycle --date {nxt} {' '.join(extra)} on the {args.years}-year warehouse, SQLite instance", e, 5.0)
            print(f"    {served_models(Path(env['TRADING_DATA_DIR']), nxt)}")
        if "e" in only and not args.no_test:
            tenv = cli_env(root / "e_test", start, uni, None)
            tenv.pop("TRADING_UNIVERSE")
            results["e_test"] = t = from_process_start(["--test"], tenv, args.repeat)
            _print_e("trading-cycle --test (5 symbols x 1 year), SQLite instance", t, 10.0)
        if "b" in only:
            import multiprocessing

            env = cli_env(root / "b", start, uni, None)
            (root / "b" / "data").mkdir(parents=True, exist_ok=True)
            ctx = multiprocessing.get_context("spawn")  # a clean process: settings are read at import
            with ctx.Pool(1) as pool:
                results["b"] = b = pool.apply(run_without_dagster, (env, start, end))
            steps = ", ".join(f"{k} {v:.1f}" for k, v in sorted(b["steps"].items(), key=lambda kv: -kv[1]))
            print(f"(b) the same asset/check bodies without Dagster:     {b['total_s']:.1f} s  [{steps}]")
        if "d" in only and pg:
            big = universe_file(args.big_symbols, root)
            env = cli_env(root / "d_pg", start, big, fresh_db(pg, "bench_d"))
            results["d"] = d = run_cli_rss(rng, env)
            print(f"(d) {args.big_symbols} symbols through Dagster on PostgreSQL: wall {d['wall_s']:.1f} s, run {d['run_s']:.1f} s, "
                  f"peak RSS {d['rss_mb']:.0f} MB")  # fmt: skip
            print(f"    steps (s): {_top_steps(d)}")
            print("\n".join(_rss_lines(d)))
    finally:
        if pg:
            pg.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    a = results.get("a_postgres")
    print("\ntargets:")
    if a:
        print(f"  (a) PostgreSQL run {a['run_s']:.1f} s <= 45 s: {a['run_s'] <= 45}")
        if "b" in results:
            print(f"  (a) <= 2 x (b) = {2 * results['b']['total_s']:.1f} s: {a['run_s'] <= 2 * results['b']['total_s']}")
    if "c" in results:
        print(f"  (c) daily run {results['c']['run_s']:.1f} s <= 5 s: {results['c']['run_s'] <= 5}")
    for key, target in (("e_daily", 5.0), ("e_test", 10.0)):
        if key in results:
            print(f"  (e) {key[2:]} from process start, median {results[key]['wall_median_s']:.2f} s <= {target:.0f} s: "
                  f"{results[key]['wall_median_s'] <= target}")  # fmt: skip
    if a and "d" in results:
        d = results["d"]
        print(f"  (d) {d['run_s']:.1f} s <= 8 x (a) = {8 * a['run_s']:.1f} s: {d['run_s'] <= 8 * a['run_s']}; peak RSS {d['rss_mb']:.0f} MB <= 4096: {d['rss_mb'] <= 4096}")
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk not in ("steps", "samples", "rss_steps", "step_medians")} for k, v in results.items()}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
