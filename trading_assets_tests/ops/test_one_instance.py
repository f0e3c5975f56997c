"""One Dagster instance whatever the user sets (issue #16 item 4): an exported DAGSTER_HOME is the
instance of both `trading-cycle` and `dagster dev` started in the project root (the project's .env
used to replace it for dagster dev); without one, trading-cycle uses <project>/data/dagster_home and
the UI is pointed at it in one line (README), never silently at a throw-away instance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trading_assets.settings import PROJECT_ROOT
from trading_assets_tests.ops.conftest import HISTORY_START, base_env, make_home, run_cli, sessions_from

# What `dagster dev` does first (dagster/_cli/dev.py): load the cwd's .env, then pick the instance.
DAGSTER_DEV_INSTANCE = """
import json, logging, sys
from dagster._cli.utils import get_possibly_temporary_instance_for_cli
with get_possibly_temporary_instance_for_cli("dagster dev", logger=logging.getLogger("test")) as instance:
    run = instance.get_run_by_id(sys.argv[1])
    print(json.dumps({"root": instance.root_directory, "run": run.run_id if run else None}))
"""


def test_an_exported_dagster_home_is_the_instance_of_trading_cycle_and_dagster_dev(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    home = make_home(tmp_path / "my_home")
    env = base_env(data, home)
    day = sessions_from(HISTORY_START, 2)[1]
    proc = run_cli(["--date", day.isoformat(), "--symbols", "AAPL"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_id = json.loads(proc.stdout)["run_id"]

    # dagster dev's own instance selection, started where the quick start starts it: the project root (.env there)
    seen = subprocess.run([sys.executable, "-c", DAGSTER_DEV_INSTANCE, run_id], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert seen.returncode == 0, seen.stderr[-3000:]
    got = json.loads(seen.stdout.strip().splitlines()[-1])
    assert got == {"root": str(home), "run": run_id}  # the same instance, the CLI's run in it


def test_without_dagster_home_the_cli_uses_the_project_instance_and_the_ui_says_how(monkeypatch):
    from trading_assets import cli
    from trading_assets.instance_storage import BatchedSqliteEventLogStorage

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert cli._dagster_environment() == PROJECT_ROOT / "data" / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", "relative/home")
    assert cli._dagster_environment() == (Path.cwd() / "relative" / "home").resolve()  # Dagster wants it absolute
    # plain `dagster dev` with no DAGSTER_HOME: Dagster's throw-away instance reads the project's dagster.yaml;
    # its event log refuses with the one line that starts the UI on the CLI's instance
    monkeypatch.delenv("DAGSTER_HOME")
    with pytest.raises(RuntimeError, match=r"DAGSTER_HOME=\$PWD/data/dagster_home dagster dev"):
        BatchedSqliteEventLogStorage()
