"""`trading-cycle`: the command-line face of the asset graph.

It materializes the same Definitions through Dagster (one run, in process) in the Dagster instance of
DAGSTER_HOME (default: <project>/data/dagster_home, the one `dagster dev` shows), prints the cycle
JSON on stdout (logs go to stderr) and stores it in cycle_meta.

    trading-cycle --test                       5 symbols x 1 year of the synthetic market, offline
    trading-cycle [--date D | --start D --end D] [--source yfinance|local|synthetic] [--data-dir DIR ...]
                  [--universe FILE] [--symbols A,B] [--workers N] [--paper | --live --confirm-live]
                  [--algo market_on_open|twap|vwap] [--dry-run] [--settings JSON] [--verbose]
    trading-cycle explain --date D --symbol S [--json]
    trading-cycle features                     the feature catalog
    trading-cycle report --start D --end D [--out FILE.html]   HTML tear sheet of a period, read-only
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from typing import TYPE_CHECKING

from trading_assets.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from trading_assets.settings import Settings

TEST_SYMBOLS = ("AAPL", "MSFT", "JPM", "XOM", "JNJ")
SOURCES = ("yfinance", "local", "synthetic")
# Exit codes (README, "Exit codes")
EXIT_OK = 0
EXIT_FAILED = 1  # the run failed: a step, or a blocking check (one paragraph on stderr, status JSON on stdout)
EXIT_USAGE = 2  # bad flags or inputs; nothing was written
EXIT_INTERNAL = 3  # an unexpected error outside the run (the instance, the warehouse ...): one line, --verbose for the traceback
EXIT_INTERRUPTED = 130  # Ctrl-C

# Project-wide Dagster settings (DESIGN section 3): one planned event per asset for a range instead of
# one per partition; batched event writes where the storage supports them (PostgreSQL).
DAGSTER_ENV_DEFAULTS = {
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
    "DAGSTER_EVENT_BATCH_SIZE": "1000",
}


class CliError(Exception):
    """A problem with the command line or its inputs: printed as one clear line, exit code 2."""


def _parse_date(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CliError(f"{flag}: {text!r} is not a date (expected YYYY-MM-DD)") from exc


def last_completed_session(now: datetime | None = None) -> date:
    """The latest session whose close (16:00 New York) has passed."""
    from trading_assets.domain import calendar

    now = now or datetime.now(ZoneInfo("America/New_York"))
    today = now.date()
    if calendar.is_session(today) and now.hour >= 16:
        return today
    return calendar.previous_session(today)


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trading-cycle",
        description="Run one trading cycle (or a range of sessions) through the Dagster asset graph and print the cycle JSON.",
        epilog="Subcommands: 'trading-cycle explain --date D --symbol S [--json]', 'trading-cycle features', "
               "'trading-cycle report --start D --end D [--out FILE.html]'.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--paper", action="store_true", help="paper trading: orders fill at the next open in simulation (default)")
    mode.add_argument("--live", action="store_true", help="live trading: refused unless a broker is configured (TRADING_BROKER)")
    p.add_argument("--test", action="store_true", help="5 symbols x 1 year of the synthetic market, offline, into data/")
    p.add_argument("--universe", metavar="FILE", help="universe file (CSV, JSON or Parquet: symbol,name,sector)")
    p.add_argument("--symbols", metavar="A,B,...", help="limit the run to these universe symbols")
    p.add_argument("--workers", type=int, metavar="N", help="parallel provider fetches (yfinance batches)")
    p.add_argument("--date", metavar="D", help="one session (YYYY-MM-DD); default: the last completed session")
    p.add_argument("--start", metavar="D", help="first session of a range (a backfill in one run)")
    p.add_argument("--end", metavar="D", help="last session of a range")
    p.add_argument("--source", choices=SOURCES, help="market-data provider (default: TRADING_PROVIDERS, else synthetic)")
    p.add_argument("--data-dir", metavar="DIR", action="append",
                   help="folder or file of CSV/Parquet bars for --source local; repeat it (or join paths with "
                        f"{os.pathsep!r}) to read several, e.g. the S&P folder and the SPY file")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="Dagster's event log and any traceback on the terminal (default: under <data dir>/logs/)")
    p.add_argument("--settings", metavar="JSON",
                   help='settings fields to override, nested by section, e.g. \'{"execution": {"algo": "twap"}}\' '
                        "(applied after the other flags)")
    p.add_argument("--algo", choices=("market_on_open", "twap", "vwap"),
                   help="execution algorithm of the orders (default: TRADING_ALGO, else market_on_open)")
    p.add_argument("--dry-run", action="store_true", help="print and audit the orders that would be sent; send nothing")
    p.add_argument("--confirm-live", action="store_true", help="required with --live (unless --dry-run): orders go to the broker")
    return p


def _build_settings(args: argparse.Namespace) -> tuple["Settings", date, date]:
    """Validate the arguments and turn them into the run's Settings (the environment is read once,
    here, by load_settings; flags override it). Returns (settings, first session, last session).
    Raises CliError (nothing written) on any bad input. Sets no TRADING_* variable: the Settings
    travel to the run in its run config (`run_config_for`)."""
    from trading_assets.domain import calendar
    from trading_assets.settings import load_settings
    from trading_assets.universe import UniverseError, load_universe

    if args.workers is not None and args.workers < 1:
        raise CliError("--workers must be at least 1")
    if args.date and (args.start or args.end):
        raise CliError("give either --date or --start/--end, not both")
    if bool(args.start) != bool(args.end):
        raise CliError("--start and --end go together")
    if args.data_dir and args.source not in (None, "local"):
        raise CliError("--data-dir is for --source local")

    if args.start:
        start, end = _parse_date(args.start, "--start"), _parse_date(args.end, "--end")
        if end < start:
            raise CliError(f"--end {end} is before --start {start}")
    else:
        start = end = _parse_date(args.date, "--date") if args.date else last_completed_session()
    if end > date.today():
        raise CliError(f"{end} is in the future")
    for d, flag in ((start, "--start" if args.start else "--date"), (end, "--end" if args.end else "--date")):
        if not calendar.is_session(d):
            raise CliError(f"{flag} {d} is not an NYSE session (weekend or exchange holiday)")

    try:
        settings = load_settings()
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    changes: dict = {}
    if args.test:
        changes["providers"] = ("synthetic",)
        if not args.start:
            start = calendar.lookback_start(end, 251)
        changes["history_start"] = start
    if args.source:
        changes["providers"] = (args.source,)
    if args.data_dir:
        paths = [Path(p) for value in args.data_dir for p in value.split(os.pathsep) if p.strip()]
        for data_dir in paths:
            if not data_dir.exists():
                raise CliError(f"--data-dir {data_dir}: no such folder or file")
        changes["local_data_dir"] = paths[0].resolve()
        changes["local_data_extra"] = tuple(p.resolve() for p in paths[1:])
        if not args.source:
            changes["providers"] = ("local",)
    if args.universe:
        changes["universe_file"] = Path(args.universe).resolve()
    if args.workers:
        changes["workers"] = args.workers
    mode = "live" if args.live else "paper" if args.paper else None
    if mode:
        changes["execution"] = dataclasses.replace(settings.execution, mode=mode)
    if args.algo:
        changes["execution"] = dataclasses.replace(changes.get("execution", settings.execution), algo=args.algo)
    settings = settings.replace(**changes) if changes else settings
    if args.settings:
        try:
            overrides = json.loads(args.settings)
            if not isinstance(overrides, dict):
                raise ValueError("expected a JSON object")
            settings = settings.with_overrides(overrides)
            if settings.agents.disabled:  # unknown agent / family names fail here, before any run
                from trading_assets.domain.agents.registry import check_disabled

                check_disabled(settings.agents)
        except (ValueError, TypeError) as exc:
            raise CliError(f"--settings {args.settings!r}: {exc}") from exc

    if settings.providers[0] == "local" and not settings.local_data_dir:
        raise CliError("--source local needs --data-dir DIR (or TRADING_LOCAL_DATA_DIR)")
    try:
        load_universe(settings.universe_file)
    except UniverseError as exc:
        raise CliError(str(exc)) from exc
    if "local" in settings.providers and settings.local_data_dir:
        from trading_assets.providers.local_files import local_paths

        for folder in local_paths([settings.local_data_dir, *settings.local_data_extra]):
            _check_local_folder(folder)
    if start < settings.history_start:
        raise CliError(
            f"--start {start} is before the history start {settings.history_start} "
            "(set TRADING_HISTORY_START to an earlier session)"
        )
    return settings, start, end


def run_config_for(settings: "Settings", symbols: list[str]) -> dict:
    """The run config that hands `settings` to the run: the whole Settings to the `pipeline`
    resource, its paths to the `warehouse` resource."""
    return {
        "resources": {
            "pipeline": {"config": {"settings_overrides": settings.to_dict(), "symbols": list(symbols)}},
            "warehouse": {"config": {"db_path": str(settings.db_path), "audit_dir": str(settings.audit_dir)}},
        }
    }


def _dagster_environment() -> Path:
    """DAGSTER_HOME (absolute; default <project>/data/dagster_home) and the project's Dagster
    variables, for Dagster itself to read. Returns the home."""
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / "data" / "dagster_home"))
    os.environ["DAGSTER_HOME"] = str(Path(os.environ["DAGSTER_HOME"]).resolve())
    for k, v in DAGSTER_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)
    return Path(os.environ["DAGSTER_HOME"])


def _check_local_folder(folder: Path) -> None:
    """Read the local data folder before anything is written: a corrupt or empty folder is a clear
    error naming the file, not a failed run that leaves a half-made warehouse behind."""
    from trading_assets.providers.base import ProviderError
    from trading_assets.providers.local_files import load_folder

    try:
        load_folder(folder)
    except ProviderError as exc:
        raise CliError(f"--data-dir {folder}: {exc}") from exc


def _check_symbols_in_universe(symbols: list[str], settings: "Settings") -> None:
    from trading_assets.universe import load_universe

    known = set(load_universe(settings.universe_file, settings.benchmark)["symbol"])
    unknown = [s for s in symbols if s not in known]
    if unknown:
        raise CliError(f"--symbols names symbols not in the universe ({settings.universe_file.name}): {unknown}")


def _install_instance_config(home: Path) -> None:
    """DAGSTER_HOME needs a dagster.yaml: use the project's (run queue, retries, telemetry off)."""
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    source = PROJECT_ROOT / "dagster.yaml"
    if not target.exists() and source.exists():
        shutil.copyfile(source, target)


def run_cycle(args: argparse.Namespace) -> int:
    settings, start, end = _build_settings(args)
    symbols: list[str] = []
    if args.test:
        symbols = list(TEST_SYMBOLS)
    if args.symbols:
        from trading_assets.universe import UniverseError, validate_symbol

        try:
            symbols = [validate_symbol(s.strip(), "--symbols: ") for s in args.symbols.split(",") if s.strip()]
        except UniverseError as exc:
            raise CliError(str(exc)) from exc
        _check_symbols_in_universe(symbols, settings)

    mode = settings.execution.mode
    if mode == "live":
        from trading_assets.brokers import get_broker
        from trading_assets.domain.execution import BrokerNotConfigured

        try:
            get_broker(settings)  # a configured broker and its keys (from the environment, never printed)
        except BrokerNotConfigured as exc:
            raise CliError(f"--live refused: {exc}") from exc
        if not (args.confirm_live or args.dry_run):
            raise CliError("--live refused: add --confirm-live to send orders to the broker "
                           f"({settings.execution.broker}, {settings.execution.broker_url or 'its paper endpoint'}), "
                           "or --dry-run to see them without sending")
        if start != end and not args.dry_run:
            raise CliError("--live runs one session at a time (--date D); backfill the history in paper mode first")

    home = _dagster_environment()
    _install_instance_config(home)

    import dagster as dg

    from trading_assets.defs.automation import TRADING_CYCLE_JOB_NAME
    from trading_assets.definitions import defs

    run_config = run_config_for(settings, symbols)
    if args.dry_run:
        run_config["resources"]["pipeline"]["config"]["dry_run"] = True
    tags = {"trading/source": "cli", "trading/mode": mode}
    if start == end:
        partition_kw = {"partition_key": end.isoformat()}
    else:
        partition_kw = {}
        tags.update({"dagster/asset_partition_range_start": start.isoformat(), "dagster/asset_partition_range_end": end.isoformat()})
    # One session = the daily cycle: the schedule's job (no pictures: the draw_evaluation_plots sensor
    # draws them after the run when a daemon runs; `trading-cycle report` any time). A range = every asset.
    job = defs.resolve_job_def(TRADING_CYCLE_JOB_NAME) if start == end else defs.resolve_implicit_global_asset_job_def()
    from dagster._core.utils import make_new_run_id

    from trading_assets.cli_report import StepProgress, dagster_output_to, failure_report

    run_id = make_new_run_id()
    log_path = settings.data_dir / "logs" / f"{run_id}.log"
    n_sessions = len(_sessions(start, end))
    print(
        f"trading-cycle: {start}..{end} ({n_sessions} session{'s' if n_sessions > 1 else ''}, {mode}, "
        f"providers {','.join(settings.providers)}) -> {settings.db_path}; run {run_id}"
        + ("" if args.verbose else f"; Dagster's log: {log_path}"),
        file=sys.stderr, flush=True,
    )
    bar = start != end and sys.stderr.isatty() and not args.verbose
    t_run = time.perf_counter()
    with dg.DagsterInstance.get() as instance, StepProgress(sys.stderr, len(job.graph.node_dict), bar) as progress:
        instance.add_event_listener(run_id, progress)
        with dagster_output_to(log_path, args.verbose):
            result = job.execute_in_process(
                instance=instance, run_config=run_config, tags=tags, raise_on_error=False, run_id=run_id, **partition_kw
            )
    if not result.success:
        report = failure_report(result.run_id, result.all_events, job.graph.node_dict)
        if args.verbose and report.traceback:
            print(report.traceback, file=sys.stderr)
        print(report.paragraph(home, None if args.verbose else log_path, args.verbose), file=sys.stderr)
        print(json.dumps({"status": "FAILED", "run_id": result.run_id, "window": [str(start), str(end)],
                          "log": None if args.verbose else str(log_path), **report.as_json()}, indent=2))
        return EXIT_FAILED
    print(f"trading-cycle: done in {time.perf_counter() - t_run:.1f} s (run {result.run_id})", file=sys.stderr, flush=True)
    from trading_assets.store.warehouse import Warehouse

    wh = Warehouse(settings.db_path, settings.audit_dir)
    if args.dry_run:
        would = wh.read("SELECT payload FROM audit_log WHERE run_id = ? AND event_type = 'dry_run' ORDER BY symbol",
                        [result.run_id])["payload"].to_list()
        print(f"trading-cycle: dry run, nothing sent: {len(would)} orders would be sent", file=sys.stderr)
        for text in would:
            t = json.loads(text)
            print(f"  would send: {t['side']} {t['quantity']} {t['symbol']} {t['order_type']} {t['time_in_force']} "
                  f"client_order_id={t['client_order_id']}", file=sys.stderr)
    row = wh.read("SELECT summary, duration_seconds, created_at FROM cycle_meta WHERE date = ?", [end]).row(0, named=True)
    summary = json.loads(row["summary"])
    out = {
        "cycle_id": summary["cycle_id"],
        "timestamp": row["created_at"].isoformat(),
        "run_id": result.run_id,
        "window": {"start": str(start), "end": str(end), "sessions": len(_sessions(start, end))},
        "duration_seconds": row["duration_seconds"],
        **{k: v for k, v in summary.items() if k != "cycle_id"},
    }
    print(json.dumps(out, indent=2))
    return 0


def _sessions(start: date, end: date) -> list[date]:
    from trading_assets.domain import calendar

    return calendar.sessions(start, end)


def _explain(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="trading-cycle explain", description="The whole chain behind one decision, read-only.")
    p.add_argument("--date", required=True, metavar="D")
    p.add_argument("--symbol", required=True, metavar="S")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    from trading_assets.explain import explain_main

    return explain_main(_parse_date(args.date, "--date"), args.symbol, as_json=args.json)


def _report(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="trading-cycle report",
                                description="A one-file HTML tear sheet of a period (read-only) and a text summary.")
    p.add_argument("--start", required=True, metavar="D")
    p.add_argument("--end", required=True, metavar="D")
    p.add_argument("--out", metavar="FILE.html", help="default: <data dir>/reports/report_<start>_<end>.html")
    args = p.parse_args(argv)
    start, end = _parse_date(args.start, "--start"), _parse_date(args.end, "--end")
    if end < start:
        raise CliError(f"--end {end} is before --start {start}")
    from trading_assets.reporting.report import report_main

    return report_main(start, end, Path(args.out) if args.out else None)


def _features(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="trading-cycle features", description="Print the feature catalog.").parse_args(argv)
    from trading_assets.domain.features.catalog import format_catalog

    print(format_catalog())
    return 0


def main(argv: list[str] | None = None) -> int:
    """The `trading-cycle` command; argv None = this process's own command line (the console script,
    `python -m trading_assets.cli`), which then ends right after its output is flushed."""
    code = _main(list(sys.argv[1:] if argv is None else argv))
    if argv is None:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown: every file, database and instance the
    command opened is closed by then (with-blocks), stdout/stderr and the logging handlers are
    flushed here; what is left is Python freeing every module and object one by one, which took
    0.8 s after a daily cycle at load ~4 and 4 s once torch, MLflow and LightGBM were loaded (#16)."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _main(argv: list[str]) -> int:
    try:
        if argv and argv[0] == "explain":
            return _explain(argv[1:])
        if argv and argv[0] == "features":
            return _features(argv[1:])
        if argv and argv[0] == "report":
            return _report(argv[1:])
        args = _run_parser().parse_args(argv)
    except CliError as exc:
        print(f"trading-cycle: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run_cycle(args)
    except CliError as exc:
        print(f"trading-cycle: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("trading-cycle: interrupted (a rerun replaces whatever the run had written)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 -- one readable line instead of a traceback (unless --verbose)
        if args.verbose:
            raise
        print(f"trading-cycle: internal error: {type(exc).__name__}: {exc} (rerun with --verbose for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
