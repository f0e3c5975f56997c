"""`trading-cycle explain` on a real session: a short range run through the CLI (the real graph on the
synthetic market), then the explanation checked against the tables it reads."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from datetime import date

import duckdb
import pytest

from trading_assets.explain import NoSuchDecision, explain, recompute_ensemble, render_text
from trading_assets.settings import load_settings
from trading_assets.store.warehouse import Warehouse, WarehouseLockedError
from trading_assets_tests.ops.conftest import HISTORY_START, SYMBOLS, base_env, make_home, run_cli, sessions_from

pytestmark = pytest.mark.slow  # a 61-session run through the CLI first

# 61 sessions from the history start: enough warm-up for the 20/60-session features, so agents speak
SESSIONS = sessions_from(HISTORY_START, 61)
UNCALIBRATED = {"meta": {"calibrate": False}}


@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    data, home = root / "data", make_home(root / "home")
    data.mkdir()
    env = base_env(data, home)
    # the book must trade within 61 sessions: the Meta-Brain's calibration (on by default; agents earn weight after 63
    # label sessions of record) is off here, its explain lines are tested in models/test_assets.py
    proc = run_cli(["--start", SESSIONS[0].isoformat(), "--end", SESSIONS[-1].isoformat(), "--symbols", ",".join(SYMBOLS),
                    "--settings", json.dumps(UNCALIBRATED)], env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"env": env, "data": data, "run_id": json.loads(proc.stdout)["run_id"], "wh": Warehouse(data / "trading.duckdb", data / "audit")}


def _settings(cycle):
    return load_settings({k: v for k, v in cycle["env"].items() if k.startswith("TRADING_")}).with_overrides(UNCALIBRATED)


def _q(wh, sql, params):
    with duckdb.connect(str(wh.db_path), read_only=True) as con:
        cur = con.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_explain_matches_the_tables(cycle, symbol):
    wh, d = cycle["wh"], SESSIONS[-1]
    x = explain(wh, d, symbol, _settings(cycle))
    [bar] = _q(wh, "SELECT * FROM price_history WHERE date = ? AND symbol = ?", [d, symbol])
    assert x["bars"]["bar"]["close"] == bar["close"] and x["bars"]["bar"]["provider"] == "synthetic"
    [q] = _q(wh, "SELECT * FROM data_quality_log WHERE date = ? AND symbol = ?", [d, symbol])
    assert x["quality"]["score"] == q["score"] and x["quality"]["reason_codes"] == list(q["reason_codes"])
    agents = _q(wh, "SELECT agent, mu, sigma, confidence FROM model_outputs WHERE date = ? AND symbol = ? ORDER BY agent", [d, symbol])
    assert [a["agent"] for a in x["agents"]] == [a["agent"] for a in agents] and len(agents) >= 5
    [dec] = _q(wh, "SELECT * FROM decisions WHERE date = ? AND symbol = ?", [d, symbol])
    [fin] = _q(wh, "SELECT * FROM risk_decisions WHERE date = ? AND symbol = ?", [d, symbol])
    m = x["meta_brain"]
    assert m["pre_risk_decision"] == dec["pre_risk_decision"] and x["risk"]["decision"] == fin["decision"]
    assert (dec["mu_hat"] is None) == (dec["pre_risk_decision"] == "REJECT")
    if dec["mu_hat"] is not None:
        # explain redoes the ensemble from the agent rows it shows: it must land on the stored mu_hat / D / sigma_hat
        rc = m["recomputed_from_agents"]
        assert math.isclose(rc["mu_hat"], dec["mu_hat"], rel_tol=1e-9, abs_tol=1e-15)
        assert math.isclose(rc["disagreement"], dec["disagreement"], rel_tol=1e-9, abs_tol=1e-18)
        assert math.isclose(rc["sigma_hat"], dec["sigma_hat"], rel_tol=1e-9)
        assert math.isclose(m["penalty"], math.exp(-_settings(cycle).meta.disagreement_beta * dec["disagreement"]))
    # one CLI run wrote every stage of this session
    assert set(x["runs"].values()) == {cycle["run_id"]}
    assert {"price_history", "data_quality", "features", "decisions", "risk_decisions", "cycle_summary"} <= set(x["runs"])
    [meta] = _q(wh, "SELECT cycle_id, settings_hash FROM cycle_meta WHERE date = ?", [d])
    assert x["versions"]["settings_hash"] == meta["settings_hash"] and x["versions"]["cycle_id"] == meta["cycle_id"]
    assert x["versions"]["feature_version"]
    text = render_text(x)
    for heading in ("1. Bars", "2. Data quality", "3. Key features", "4. Agents", "5. Meta-Brain", "6. Risk gate", "7. Order and fill", "9. Runs and versions"):
        assert heading in text
    assert fin["decision"] in text
    # the book's record of the gate: its scales and the tail model behind CVaR95 (the synthetic market's years of
    # history before the run give the book's trailing 756 losses: enough exceedances for the GPD)
    [book] = _q(wh, "SELECT * FROM portfolio WHERE date = ?", [d])
    assert book["tail_method"] == "evt" and book["tail_exceedances"] >= 25 and book["tail_beta"] > 0
    assert 0 < book["vol_scale"] <= 1 and 0 < book["drawdown_scale"] <= 1
    assert x["portfolio"]["tail_xi"] == book["tail_xi"] and x["portfolio"]["cvar_95"] == book["cvar_95"]
    assert "book scaling: volatility x" in text and f"{book['tail_exceedances']} exceedances)" in text


def test_agents_speak_and_the_order_and_its_fill_are_shown(cycle):
    wh = cycle["wh"]
    spoke = _q(wh, "SELECT count(*) AS n FROM decisions WHERE date = ? AND mu_hat IS NOT NULL", [SESSIONS[-1]])[0]["n"]
    assert spoke >= 1  # so the Meta-Brain cross-check above really ran
    filled = _q(
        wh,
        "SELECT o.order_id, o.date, o.symbol, o.side, o.quantity, f.price, f.date AS fill_date FROM orders o "
        "JOIN fills f USING (order_id) WHERE o.date >= ? ORDER BY o.date DESC, o.symbol LIMIT 1",
        [SESSIONS[-10]],
    )
    assert filled, "no filled order in the last sessions of the run"
    o = filled[0]
    x = explain(wh, o["date"], o["symbol"], _settings(cycle))
    [shown] = x["orders"]
    assert (shown["order_id"], shown["side"], shown["quantity"]) == (o["order_id"], o["side"], o["quantity"])
    assert (shown["status"], shown["fill_price"], shown["fill_date"]) == ("FILLED", o["price"], o["fill_date"].isoformat())
    assert x["risk"]["decision"] == ("EXECUTE_BUY" if o["side"] == "BUY" else "EXECUTE_SELL")
    assert "fill: FILLED on " + o["fill_date"].isoformat() in render_text(x)
    # the fill session's explanation shows the fill at its open
    nxt = explain(wh, o["fill_date"], o["symbol"], _settings(cycle))
    assert [f["order_id"] for f in nxt["fills_at_this_open"]] == [o["order_id"]]


def test_explain_cli_json_equals_the_function_and_writes_nothing(cycle):
    wh, d = cycle["wh"], SESSIONS[-2]
    before = (os.stat(wh.db_path).st_mtime_ns, wh.db_path.read_bytes())
    proc = run_cli(["explain", "--date", d.isoformat(), "--symbol", "MSFT", "--json"], cycle["env"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(json.dumps(explain(wh, d, "MSFT", _settings(cycle)), default=str))
    text = run_cli(["explain", "--date", d.isoformat(), "--symbol", "MSFT"], cycle["env"])
    assert text.returncode == 0 and text.stdout.startswith(f"MSFT on {d}")
    assert (os.stat(wh.db_path).st_mtime_ns, wh.db_path.read_bytes()) == before


def test_explain_says_what_is_missing(cycle, tmp_path):
    env = cycle["env"]
    nothing = run_cli(["explain", "--date", SESSIONS[-1].isoformat(), "--symbol", "XOM"], env)  # not in this run's universe
    assert nothing.returncode == 1 and "nothing recorded for XOM" in nothing.stderr
    bad = run_cli(["explain", "--date", SESSIONS[-1].isoformat(), "--symbol", "AA;PL"], env)
    assert bad.returncode == 2 and "invalid symbol" in bad.stderr
    empty = run_cli(["explain", "--date", "2024-02-01", "--symbol", "AAPL"], {**env, "TRADING_DATA_DIR": str(tmp_path)})
    assert empty.returncode == 1 and "no warehouse" in empty.stderr
    assert not (tmp_path / "trading.duckdb").exists()  # explain never creates a warehouse
    with pytest.raises(NoSuchDecision):
        explain(cycle["wh"], date(2023, 12, 29), "AAPL", _settings(cycle))  # a session before the run


def _hold_write_lock(path: str, seconds: float, ready) -> None:
    import time

    con = duckdb.connect(path)
    ready.set()
    time.sleep(seconds)
    con.close()


def test_explain_waits_briefly_for_a_writer_then_says_so(cycle):
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_write_lock, args=(str(cycle["wh"].db_path), 3.0, ready))
    p.start()
    try:
        assert ready.wait(30)
        impatient = Warehouse(cycle["wh"].db_path, lock_timeout_s=0.3)
        with pytest.raises(WarehouseLockedError, match="locked by another writing process"):
            explain(impatient, SESSIONS[-1], "AAPL", _settings(cycle))
        patient = Warehouse(cycle["wh"].db_path, lock_timeout_s=60)
        assert explain(patient, SESSIONS[-1], "AAPL", _settings(cycle))["symbol"] == "AAPL"
    finally:
        p.join(30)


def test_recompute_ensemble_by_hand():
    agents = [
        {"agent": "a", "mu": 0.002, "sigma": 0.01, "confidence": 0.6},
        {"agent": "b", "mu": -0.001, "sigma": 0.02, "confidence": 0.3},
        {"agent": "c", "mu": 0.5, "sigma": 0.02, "confidence": 0.01},  # below min_confidence: silent
        {"agent": "d", "mu": None, "sigma": 0.02, "confidence": 0.9},  # no estimate: silent
    ]
    rc = recompute_ensemble(agents, 0.05)
    # w = (2/3, 1/3); mu_hat = 2/3*0.002 - 1/3*0.001 = 0.001; D = 2/3*(0.001)^2 + 1/3*(0.002)^2 = 2e-6
    assert rc["active_agents"] == ["a", "b"]
    assert math.isclose(rc["mu_hat"], 0.001) and math.isclose(rc["disagreement"], 2e-6)
    # sigma_hat^2 = 2/3*1e-4 + 1/3*4e-4 + 2e-6 = 2.02e-4
    assert math.isclose(rc["sigma_hat"], math.sqrt(2.02e-4))
    assert recompute_ensemble(agents[2:], 0.05) is None
