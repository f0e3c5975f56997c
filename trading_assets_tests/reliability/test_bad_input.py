"""Guarantee 7: bad input at the edges -> a clear error naming the problem, a non-zero exit code, and
nothing written (no warehouse, no audit file, no run in the Dagster instance)."""

from __future__ import annotations

import json
import subprocess

import pytest

from trading_assets import cli
from trading_assets_tests.reliability.conftest import SHORT, cli_env


def _nothing_written(data_dir):
    assert not (data_dir / "trading.duckdb").exists()
    assert not (data_dir / "audit").exists()
    runs = data_dir / "dagster_home" / "history"
    assert not runs.exists() or not any(runs.rglob("*.db")), "a run was recorded"


def _universe(tmp_path, name, text):
    f = tmp_path / name
    f.write_bytes(text) if isinstance(text, bytes) else f.write_text(text)
    return f


UNIVERSES = {
    "malformed symbol": ("u.csv", "symbol,name,sector\nAAPL,Apple,IT\naapl$,x,IT\n", "line 3: invalid symbol 'aapl$'"),
    "sql-like symbol": ("u.json", json.dumps([{"symbol": "MSFT"}, {"symbol": "X'; DROP TABLE universe;--"}]),
                        "item 2: invalid symbol \"X'; DROP TABLE universe;--\""),
    "empty universe": ("u.csv", "symbol,name,sector\n", "the universe has no tradable symbols"),
    "only a header-less file": ("u.csv", "", "the header must name a 'symbol' column"),
    "duplicate symbol": ("u.csv", "symbol,name,sector\nAAPL,Apple,IT\nMSFT,Microsoft,IT\nAAPL,Apple again,IT\n",
                         "line 4: duplicate symbol 'AAPL' (first at"),
    "corrupt parquet": ("u.parquet", b"PAR1 this is not parquet", "not a readable Parquet file"),
    "missing file": (None, None, "universe file not found"),
}


@pytest.mark.parametrize("case", list(UNIVERSES))
def test_bad_universe_file(data_dir, tmp_path, capsys, case):
    name, text, message = UNIVERSES[case]
    path = _universe(tmp_path, name, text) if name else tmp_path / "absent.csv"
    assert cli.main(["--universe", str(path), "--date", "2024-03-01"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and str(path) in err, err
    _nothing_written(data_dir)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--symbols", "AAPL,MSFT;DELETE", "--date", "2024-03-01"], "invalid symbol 'MSFT;DELETE'"),
        (["--start", "2024-03-08", "--end", "2024-03-01"], "--end 2024-03-01 is before --start 2024-03-08"),
        (["--date", "2024-07-04"], "--date 2024-07-04 is not an NYSE session"),
        (["--start", "2024-12-25", "--end", "2024-12-31"], "--start 2024-12-25 is not an NYSE session"),
        (["--source", "local", "--data-dir", "/nonexistent/bars", "--date", "2024-03-01"], "--data-dir /nonexistent/bars: no such folder"),
        (["--source", "local", "--date", "2024-03-01"], "--source local needs --data-dir"),
    ],
    ids=["symbols", "end-before-start", "holiday", "christmas-start", "missing-data-dir", "no-data-dir"],
)
def test_bad_arguments(data_dir, capsys, argv, message):
    assert cli.main(argv) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err
    _nothing_written(data_dir)


def test_range_before_the_history_start(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("TRADING_HISTORY_START", "2024-01-02")
    assert cli.main(["--start", "2023-12-01", "--end", "2024-01-05"]) == cli.EXIT_USAGE
    assert "--start 2023-12-01 is before the history start 2024-01-02" in capsys.readouterr().err
    _nothing_written(data_dir)


def test_a_symbol_outside_the_universe(data_dir, capsys):
    """Refused before the run starts: exit 2 naming the symbol; no run, nothing in the warehouse."""
    assert cli.main(["--symbols", "AAPL,ZZZZ9", "--date", "2024-03-01"]) == cli.EXIT_USAGE
    assert "not in the universe" in capsys.readouterr().err and "ZZZZ9"
    assert not (data_dir / "trading.duckdb").exists() and not (data_dir / "audit").exists()


@pytest.mark.slow
def test_corrupt_data_file_writes_nothing(tmp_path):
    folder = tmp_path / "bars"
    folder.mkdir()
    (folder / "AAPL.csv").write_bytes(b"date,open,high\n2023-01-03,1,2\n\x00\xff garbage,,,\n")
    (folder / "MSFT.parquet").write_bytes(b"PAR1 not parquet")
    env = cli_env(tmp_path / "run")
    proc = subprocess.run(
        [*cli_cmd(), "--source", "local", "--data-dir", str(folder), "--date", SHORT[3].isoformat(), "--symbols", "AAPL,MSFT"],
        env=env, capture_output=True, text=True, timeout=300, cwd=env["TRADING_DATA_DIR"],
    )
    assert proc.returncode == 2  # refused before the run: a usage-level error
    assert "MALFORMED_RESPONSE" in proc.stderr and ("AAPL.csv" in proc.stderr or "MSFT.parquet" in proc.stderr)
    assert not (tmp_path / "run" / "data" / "trading.duckdb").exists()


def cli_cmd() -> list[str]:
    from trading_assets_tests.ops.conftest import VENV_BIN

    return [str(VENV_BIN / "trading-cycle")]
