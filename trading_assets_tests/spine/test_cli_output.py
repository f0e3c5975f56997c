"""What `trading-cycle` prints, through the real entry point (the installed console script):
progress lines on stderr, Dagster's event log in a file under the data dir (not on the terminal),
and for a failed run one paragraph naming the failing check, the session and the symbols, the run id
and how to see it in `dagster dev` -- no traceback -- and exit code 1."""

from __future__ import annotations

import json
from datetime import date

import polars as pl

from trading_assets_tests.ops.conftest import base_env, make_home, run_cli, sessions_from

START = date(2024, 1, 2)
SYMBOLS = ["AAPL", "MSFT", "JPM"]


def _local_folder(tmp_path, broken_session: date | None, broken_symbols: list[str]):
    """3 symbols x 8 sessions of plain bars; on `broken_session` the broken symbols have no prices at all."""
    days = sessions_from(START, 8)
    rows = []
    for i, d in enumerate(days):
        for j, s in enumerate(SYMBOLS):
            px = 100.0 + 10 * j + 0.5 * i
            bad = d == broken_session and s in broken_symbols
            rows.append({"date": d, "symbol": s, "open": None if bad else px, "high": None if bad else px + 1,
                         "low": None if bad else px - 1, "close": None if bad else px + 0.2, "volume": 1_000_000.0})
    folder = tmp_path / "bars"
    folder.mkdir()
    pl.DataFrame(rows).write_csv(folder / "bars.csv")
    universe = tmp_path / "universe.csv"
    universe.write_text("symbol,name,sector\n" + "".join(f"{s},{s} Inc,Information Technology\n" for s in SYMBOLS)
                        + "SPY,SPDR S&P 500,Benchmark\n")
    return days, folder, universe


def test_a_failed_run_prints_one_paragraph_naming_the_sessions(tmp_path):
    """A session run after a gap: the book refuses (it is path dependent) and the step fails."""
    days = sessions_from(START, 3)
    data = tmp_path / "data"
    data.mkdir()
    env = base_env(data, make_home(tmp_path / "home"), TRADING_HISTORY_START=START.isoformat())
    first = run_cli(["--date", days[0].isoformat(), "--symbols", "AAPL,MSFT"], env)
    assert first.returncode == 0, first.stderr[-3000:]
    proc = run_cli(["--date", days[2].isoformat(), "--symbols", "AAPL,MSFT"], env)  # days[1] never materialized
    assert proc.returncode == 1, proc.stderr[-3000:]
    err = proc.stderr
    assert "Traceback" not in err and "DEBUG" not in err and "Warning" not in err
    paragraph = [line for line in err.splitlines() if line.startswith("trading-cycle: the run FAILED")]
    assert len(paragraph) == 1, err
    text = paragraph[0]
    status = json.loads(proc.stdout)
    assert status["status"] == "FAILED" and f"Run id {status['run_id']}" in text and "dagster dev" in text
    assert "Step book failed: " in text and f"none at {days[1]}" in text
    assert f"Sessions: {days[0]}, {days[1]}, {days[2]}." in text  # the ones the error names
    assert status["skipped_steps"] and "cycle_summary" in status["skipped_steps"]
    # Dagster's event log went to the instance and to the log file, not to the terminal
    log_file = data / "logs" / f"{status['run_id']}.log"
    assert "STEP_FAILURE" in log_file.read_text() and f"Dagster's log: {log_file}" in text
    verbose = run_cli(["--date", days[2].isoformat(), "--symbols", "AAPL,MSFT", "--verbose"], env)
    assert verbose.returncode == 1 and 'File "' in verbose.stderr and "STEP_FAILURE" in verbose.stderr  # the stack, the event log


def test_check_metadata_names_sessions_and_symbols():
    """The paragraph's sessions and symbols come from a failing check's metadata, whatever its shape."""
    from trading_assets.cli_report import _collect

    sessions, symbols = {}, {}
    _collect([["2024-03-05", 0.8], ["2024-03-06", 0.5]], "breaching_sessions", sessions, symbols)
    _collect([["2024-03-05", "AAPL", "NO_PRICES"], ["2024-03-07", "BRK.B", "NEGATIVE_VOLUME"]], "examples", sessions, symbols)
    _collect({"MSFT": {"sessions": 2, "codes": ["MISSING_FIELD"]}}, "failing_symbols", sessions, symbols)
    _collect(["2024-03-08"], "empty_sessions", sessions, symbols)
    _collect("3 session(s) with no bars at all in 2024-03-01..2024-03-09", "description", sessions, symbols)
    assert sorted(sessions) == ["2024-03-01", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08", "2024-03-09"]
    assert sorted(symbols) == ["AAPL", "BRK.B", "MSFT"]  # reason codes and numbers are not symbols


def test_a_good_run_prints_one_line_per_step_and_the_json(tmp_path):
    days, folder, universe = _local_folder(tmp_path, broken_session=None, broken_symbols=[])
    data = tmp_path / "data"
    data.mkdir()
    env = base_env(data, make_home(tmp_path / "home"), TRADING_HISTORY_START=START.isoformat())
    proc = run_cli(["--source", "local", "--data-dir", str(folder), "--universe", str(universe),
                    "--start", days[0].isoformat(), "--end", days[-1].isoformat()], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"trading-cycle: {days[0]}..{days[-1]} (8 sessions, paper, providers local)")
    steps = [line for line in lines if line.startswith("  ")]
    assert any(line.split(".")[0].strip() == "features" and line.endswith(" s") for line in steps)
    assert any(line.strip().startswith("book") for line in steps)
    assert lines[-1].startswith("trading-cycle: done in") and out["run_id"] in lines[-1]
    assert not any("DEBUG" in line or "Warning" in line for line in lines)
