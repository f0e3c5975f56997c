"""#16 end to end: a messy real file through `trading-cycle`, two years in one run.

The file is derived at test time, in a tmp folder, from ../shared/data (never committed): nine real
S&P names and SPY from 2013-02-08 to 2015-01-30, made messy the way another vendor's file is:
- one session (2014-04-15) where seven of the nine names (3/4 of the universe) lack open, high and low;
- AAPL's 7:1 split of 2014-06-09 left unadjusted (prices before it x 7, volume / 7);
- KO shifted to 70% of its level from 2014-03-03 on with no corporate action (a spin-off's signature);
- one bad bar: PG at 60% of its price on 2014-10-15 only;
- and the file's own real defect: DISCA/DISCK's unadjusted 2:1 split of 2014-08-07.
The run succeeds (exit 0) and prints the cycle JSON; 2014-04-15 is HALTED (every decision REJECT
SYSTEMIC_DATA_FAULT, no fill at its open, no order, positions held) and audited; every other session is
traded; AAPL, KO, DISCA and DISCK get inferred actions known two sessions after their moves, so the
features see one continuous series from then on; PG's bar is a reversed spike; and the incident
sensor, evaluated on the run recorded in the CLI's Dagster instance, writes a data_incident audit row
and POSTs it to a webhook on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import polars as pl
import pytest

from trading_assets.defs import automation
from trading_assets.defs.quality import QUALITY_SHARE_WITHIN_LIMIT, SESSION_HALTED
from trading_assets.domain import reasons as rc
from trading_assets.store.warehouse import Warehouse
from trading_assets_tests.conftest import SHARED_DATA, requires_shared_data
from trading_assets_tests.reliability.conftest import cli, cli_env

D = date.fromisoformat
START, END = D("2013-02-08"), D("2015-01-30")
NAMES = ["AAPL", "DISCA", "DISCK", "JNJ", "JPM", "KO", "MSFT", "PG", "XOM"]
HALTED = D("2014-04-15")
STRIPPED = ["AAPL", "DISCA", "DISCK", "JNJ", "JPM", "KO", "MSFT"]  # 7 of 9
AAPL_SPLIT, KO_SHIFT, PG_BAD = D("2014-06-09"), D("2014-03-03"), D("2014-10-15")
PRICES = ["open", "high", "low", "close"]


def _messy_folder(folder) -> None:
    raw = pl.read_parquet(SHARED_DATA / "prices" / "sp500_2013_2018.parquet").filter(
        pl.col("symbol").is_in(NAMES) & pl.col("date").is_between(START, END)
    )
    spy = pl.read_parquet(SHARED_DATA / "benchmark" / "spy_1993_2018.parquet").filter(pl.col("date").is_between(START, END))
    bars = raw.with_columns(pl.col("volume").cast(pl.Float64))
    sym, day = pl.col("symbol"), pl.col("date")

    def scale(cond, f, volume=1.0):
        return [pl.when(cond).then(pl.col(c) * f).otherwise(pl.col(c)).alias(c) for c in PRICES] + [
            pl.when(cond).then(pl.col("volume") * volume).otherwise(pl.col("volume")).alias("volume")
        ]

    bars = bars.with_columns(scale((sym == "AAPL") & (day < AAPL_SPLIT), 7.0, 1 / 7))
    bars = bars.with_columns(scale((sym == "KO") & (day >= KO_SHIFT), 0.7))
    bars = bars.with_columns(scale((sym == "PG") & (day == PG_BAD), 0.6))
    strip = sym.is_in(STRIPPED) & (day == HALTED)
    bars = bars.with_columns([pl.when(strip).then(None).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low")])
    folder.mkdir(parents=True)
    bars.write_parquet(folder / "bars.parquet")
    spy.select("date", "symbol", "open", "high", "low", "close", "volume").write_parquet(folder / "spy.parquet")


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    if not (SHARED_DATA / "prices").exists():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    root = tmp_path_factory.mktemp("messy")
    _messy_folder(root / "vendor")
    universe = root / "universe.csv"
    sectors = pl.read_parquet(SHARED_DATA / "sp500_sectors_2018.parquet")
    sectors.filter(pl.col("symbol").is_in(NAMES)).select("symbol", "name", "sector").write_csv(universe)
    env = cli_env(root / "run", TRADING_HISTORY_START=START.isoformat())
    proc = cli(["--source", "local", "--data-dir", str(root / "vendor"), "--universe", str(universe),
                "--start", START.isoformat(), "--end", END.isoformat()], env, timeout=1200)
    return {"root": root, "env": env, "proc": proc, "wh": Warehouse(root / "run" / "data" / "trading.duckdb")}


@requires_shared_data
@pytest.mark.slow
def test_the_run_succeeds_and_halts_only_the_broken_session(messy):
    proc, wh = messy["proc"], messy["wh"]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert out["window"]["start"] == START.isoformat() and out["window"]["end"] == END.isoformat()
    halted = wh.read("SELECT date, failing, symbols FROM session_quality WHERE halted")
    assert halted.rows() == [(HALTED, 7, 9)]
    assert wh.read("SELECT count(*) AS n FROM session_quality")["n"][0] == out["window"]["sessions"]
    dec = wh.read("SELECT pre_risk_decision, reason_codes FROM decisions WHERE date = ?", [HALTED])
    assert dec.height == 9 and set(dec["pre_risk_decision"]) == {rc.REJECT}
    assert all(rc.SYSTEMIC_DATA_FAULT in c for c in dec["reason_codes"].to_list())
    assert wh.read("SELECT count(*) AS n FROM orders WHERE date = ?", [HALTED])["n"][0] == 0
    fills = wh.read("SELECT status, reason FROM fills WHERE date = ?", [HALTED])
    assert set(fills["status"]) <= {"CANCELLED"} and all(rc.SYSTEMIC_DATA_FAULT in r for r in fills["reason"].to_list())
    q = "SELECT symbol, quantity FROM positions WHERE date = ? ORDER BY symbol"
    assert wh.read(q, [HALTED]).equals(wh.read(q, [D("2014-04-14")]))
    # the others are traded: orders on most sessions of both years, before and after the halt
    per_year = wh.read("SELECT year(date) AS y, count(DISTINCT date) AS n FROM orders GROUP BY 1 ORDER BY 1")
    assert per_year["y"].to_list() == [2013, 2014, 2015] and per_year["n"].min() > 0
    assert wh.read("SELECT count(*) AS n FROM orders WHERE date > ?", [HALTED])["n"][0] > 0
    [audit] = wh.read("SELECT date, payload FROM audit_log WHERE event_type = ?", [SESSION_HALTED]).rows()
    assert audit[0] == HALTED and json.loads(audit[1])["examples"] == STRIPPED


@requires_shared_data
@pytest.mark.slow
def test_level_shifts_are_inferred_and_the_features_see_a_continuous_series(messy):
    wh = messy["wh"]
    acts = wh.read("SELECT date, symbol, ex_date, action, ratio, provenance FROM inferred_actions ORDER BY ex_date, symbol")
    got = {(s, e): (d, a, r) for d, s, e, a, r, _ in acts.rows()}
    assert set(acts["provenance"]) == {"inferred"}
    assert set(got) == {("KO", KO_SHIFT), ("AAPL", AAPL_SPLIT), ("DISCA", D("2014-08-07")), ("DISCK", D("2014-08-07"))}
    # known two sessions after the move, not before
    assert got[("AAPL", AAPL_SPLIT)][0] == D("2014-06-11") and got[("KO", KO_SHIFT)][0] == D("2014-03-05")
    assert got[("DISCA", D("2014-08-07"))][1:] == ("split", 0.5)
    assert got[("AAPL", AAPL_SPLIT)][1] == "level_shift" and got[("AAPL", AAPL_SPLIT)][2] == pytest.approx(93.7 / (92.2242 * 7), rel=1e-9)
    # AAPL: held on the move and the next session (REJECT UNCONFIRMED_MOVE, null features), tradable again after
    held = wh.read("SELECT d.date, d.pre_risk_decision, d.reason_codes, f.quality_flagged, f.logret_1 FROM decisions d "
                   "JOIN features f USING (date, symbol) WHERE symbol = 'AAPL' AND date BETWEEN ? AND ? ORDER BY date",
                   [AAPL_SPLIT, D("2014-06-12")])
    assert held["pre_risk_decision"].to_list()[:2] == [rc.REJECT, rc.REJECT]
    assert all(rc.UNCONFIRMED_MOVE in c for c in held["reason_codes"].to_list()[:2])
    assert held["quality_flagged"].to_list() == [True, True, False, False]
    # the features' return on the confirming session spans the held bars net of the inferred factor:
    # ln(93.86 / (92.2242 * 7 * ratio)) = ln(93.86 / 93.7), not the -1.93 of the raw 7:1 drop
    r = held["logret_1"].to_list()
    assert r[2] == pytest.approx(0.0017062, abs=1e-6) and abs(r[3]) < 0.05
    # a 20-session volatility after the split looks like AAPL's, not like a 7:1 crash
    vol = wh.read("SELECT vol_20 FROM features WHERE symbol = 'AAPL' AND date = ?", [D("2014-06-30")])["vol_20"][0]
    assert 0.05 < vol < 0.6


@requires_shared_data
@pytest.mark.slow
def test_the_bad_bar_is_flagged_and_no_real_move_is_a_data_error(messy):
    wh = messy["wh"]
    [(passed, codes)] = wh.read("SELECT passed, reason_codes FROM data_quality_log WHERE symbol = 'PG' AND date = ?",
                                [D("2014-10-16")]).rows()
    assert "REVERSED_SPIKE" in codes and not passed
    [(passed, codes)] = wh.read("SELECT passed, reason_codes FROM data_quality_log WHERE symbol = 'KO' AND date = ?", [KO_SHIFT]).rows()
    assert passed and codes == ["LARGE_MOVE", "MOVE_UNCONFIRMED"]  # held, not a data error
    # the real defect of the file stays flagged
    disca = wh.read("SELECT passed, reason_codes FROM data_quality_log WHERE symbol IN ('DISCA', 'DISCK') AND date = '2014-08-07'")
    assert not disca["passed"].any() and all("UNADJUSTED_SPLIT" in c for c in disca["reason_codes"].to_list())


@requires_shared_data
@pytest.mark.slow
def test_the_incident_is_raised_from_the_recorded_run(messy, monkeypatch):
    env, root = messy["env"], messy["root"]
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for k, v in env.items():
            if k.startswith(("TRADING_", "DAGSTER_")):
                monkeypatch.setenv(k, v)
        monkeypatch.setenv("TRADING_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hooks/trading")
        from trading_assets.definitions import defs

        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            [run] = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.SUCCESS
            halted, description = automation.halted_sessions_of_run(instance, run.run_id)
            assert [h["date"] for h in halted] == [HALTED.isoformat()] and "2014-04-15" in description
            [record] = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records
            ctx = dg.build_run_status_sensor_context(
                sensor_name=automation.DATA_INCIDENT_SENSOR_NAME,
                dagster_event=record.event_log_entry.dagster_event,
                dagster_instance=instance,
                dagster_run=run,
                repository_def=defs.get_repository_def(),
            )
            automation.raise_data_incident(ctx)
            checks = [r.event_log_entry.dagster_event.event_specific_data for r in
                      instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records]
            [share] = [c for c in checks if c.check_name == QUALITY_SHARE_WITHIN_LIMIT]
            assert not share.passed and share.severity == dg.AssetCheckSeverity.ERROR
    finally:
        server.shutdown()
        server.server_close()
    rows = Warehouse(root / "run" / "data" / "trading.duckdb").read("SELECT run_id, date, payload FROM audit_log WHERE event_type = ?",
                                                                     [automation.DATA_INCIDENT])
    assert rows.height == 1 and rows["run_id"][0] == run.run_id and rows["date"][0] == HALTED
    payload = json.loads(rows["payload"][0])
    assert payload["reason"] == rc.SYSTEMIC_DATA_FAULT and payload["halted_sessions"][0]["failing"] == 7
    [body] = _Hook.received
    assert body["event"] == automation.DATA_INCIDENT and body["run_id"] == run.run_id
    assert body["halted_sessions"][0]["date"] == HALTED.isoformat()
