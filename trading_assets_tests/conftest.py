"""Shared fixtures: an isolated data folder, warehouse and Dagster home per test.

Tests never touch the developer's data/ folder or the network.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED_DATA.exists():  # a checkout elsewhere: ../shared beside the repo root
    SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Subprocesses (`trading-cycle`, `python -m trading_assets.cli`, dagster dev) must run the code of THIS
# checkout: an editable install points at whichever clone ran `pip install -e`, so a second clone or a
# git worktree would otherwise test its own code in process and another clone's in its subprocesses.
REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])

requires_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "prices").exists(), reason=f"real data folder {SHARED_DATA} is absent (CI always has it)"
)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "prices").exists():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh data folder wired through the environment (TRADING_* and DAGSTER_HOME)."""
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("TRADING_DATA_DIR", str(d))
    monkeypatch.delenv("TRADING_DB_PATH", raising=False)
    monkeypatch.delenv("TRADING_AUDIT_DIR", raising=False)
    home = d / "dagster_home"
    home.mkdir()
    # The project's instance settings (run queue, batched event log, telemetry off), as in data/dagster_home.
    (home / "dagster.yaml").write_text((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return d


@pytest.fixture
def warehouse(data_dir):
    from trading_assets.store.warehouse import Warehouse

    wh = Warehouse(data_dir / "trading.duckdb", data_dir / "audit")
    wh.ensure_schema()
    return wh


@pytest.fixture(autouse=True)
def _restore_environment():
    """The CLI sets TRADING_* / DAGSTER_* variables for the process it runs in: undo that after each test."""
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("TRADING_")]:
        del os.environ[key]
    yield
    os.environ.clear()
    os.environ.update(saved)
