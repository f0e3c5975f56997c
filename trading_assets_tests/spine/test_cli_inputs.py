"""trading-cycle refuses bad input with a clear message, exit code 2, and writes nothing."""

from __future__ import annotations

import pytest

from trading_assets import cli


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--start", "2024-03-08", "--end", "2024-03-01"], "is before --start"),
        (["--date", "2024-07-04"], "not an NYSE session"),
        (["--date", "2024-07-06"], "not an NYSE session"),
        (["--date", "yesterday"], "is not a date"),
        (["--start", "2024-03-01"], "--start and --end go together"),
        (["--date", "2024-03-01", "--start", "2024-03-01", "--end", "2024-03-04"], "either --date or --start/--end"),
        (["--source", "local", "--data-dir", "/nonexistent/folder", "--date", "2024-03-01"], "no such folder"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--date", "2099-01-02"], "in the future"),
    ],
)
def test_bad_arguments(data_dir, capsys, argv, message):
    assert cli.main(argv) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (data_dir / "trading.duckdb").exists()


def test_start_before_history_start(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("TRADING_HISTORY_START", "2024-01-02")
    assert cli.main(["--start", "2023-12-01", "--end", "2024-01-05"]) == cli.EXIT_USAGE
    assert "before the history start 2024-01-02" in capsys.readouterr().err
    assert not (data_dir / "trading.duckdb").exists()


def test_bad_universe_file(data_dir, tmp_path, capsys):
    f = tmp_path / "u.csv"
    f.write_text("symbol,name,sector\nAAPL,Apple,IT\nDROP TABLE,x,y\n")
    assert cli.main(["--universe", str(f), "--date", "2024-03-01"]) == cli.EXIT_USAGE
    assert "line 3: invalid symbol 'DROP TABLE'" in capsys.readouterr().err
    assert not (data_dir / "trading.duckdb").exists()


def test_bad_symbols_flag(data_dir, capsys):
    assert cli.main(["--symbols", "AAPL,rm -rf", "--date", "2024-03-01"]) == cli.EXIT_USAGE
    assert "invalid symbol 'rm -rf'" in capsys.readouterr().err
