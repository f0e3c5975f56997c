"""`trading-cycle explain --date D --symbol S`: the whole chain behind one decision, read-only.

`explain(warehouse, date, symbol)` gathers, for one (session, symbol), every row the pipeline wrote:
the bars and their provider (and any corporate action that day), the quality score and its reason
codes, the key features, each agent's mu / sigma / confidence / explanation, the Meta-Brain's math
(mu_hat, the disagreement Var_k(mu_k), the penalty exp(-beta * Var), z, the Kelly fraction, the
target weight), the risk gate's adjustments and reasons, the order and its fill, the position and the
book after the close, and the run ids and versions behind each stage.

It only reads: the DuckDB file is opened read-only (nothing is created, no schema is written), and
while a writer (a run in progress) holds the lock it retries for OpsSettings.reader_lock_timeout_s,
then says so. `render_text` is the readable form; `explain_main(..., as_json=True)` prints JSON.
"""

from __future__ import annotations

import json
import math
import sys
from datetime import date, datetime
from pathlib import Path

from trading_assets.settings import Settings, load_ops_settings, load_settings
from trading_assets.store.warehouse import Warehouse, WarehouseLockedError

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2

# Features shown first (the agents' inputs); any other feature of the row is listed under "other".
KEY_FEATURES = (
    "ret_1d", "ret_5d", "ret_21d", "mom_3m", "mom_6m", "mom_12_1", "px_sma_200",
    "zscore_20", "rsi_14", "bb_pctb_20", "vol_20", "vol_60", "ewma_vol_20", "atr_14",
    "adv_dollar_21d", "volume_ratio_20", "stoch_k_14", "beta_252",
)  # fmt: skip
_FEATURE_BOOKKEEPING = ("date", "symbol", "history_rows", "quality_flagged", "benchmark_available",
                        "feature_version", "computed_at", "run_id")  # fmt: skip


class NoSuchDecision(LookupError):
    """Nothing at all was recorded for this (session, symbol)."""


def _clean(value):
    """JSON-safe: dates as ISO text, NaN/inf as None, JSON strings decoded, containers recursed."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _json_field(text):
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _rows(con, sql: str, params: list) -> list[dict]:
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _one(con, sql: str, params: list) -> dict | None:
    rows = _rows(con, sql, params)
    return rows[0] if rows else None


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def recompute_ensemble(agents: list[dict], min_confidence: float, sigma_agent: str = "") -> dict | None:
    """The Meta-Brain's steps 1-3 (domain/meta_brain.py) redone from the agent rows shown, as a cross-check:
    w_k = c_k / sum_j c_j over active agents (finite mu, sigma > 0, c_k >= min_confidence),
    mu_hat = sum_k w_k mu_k, D = sum_k w_k (mu_k - mu_hat)^2, sigma_hat = sqrt(sum_k w_k sigma_k^2 + D),
    with every sigma_k = the sigma agent's sigma (the GARCH forecast) when that row has one."""

    def ok(v) -> bool:
        return isinstance(v, (int, float)) and math.isfinite(v)

    src = next((a["sigma"] for a in agents if a.get("agent") == sigma_agent and ok(a.get("sigma")) and a["sigma"] > 0), None)
    if src is not None:
        agents = [{**a, "sigma": src} if ok(a.get("sigma")) and a["sigma"] > 0 else a for a in agents]

    active = [a for a in agents if ok(a.get("mu")) and ok(a.get("sigma")) and a["sigma"] > 0
              and ok(a.get("confidence")) and a["confidence"] >= min_confidence]  # fmt: skip
    total = sum(a["confidence"] for a in active)
    if not active or total <= 0:
        return None
    w = [a["confidence"] / total for a in active]
    mu_hat = sum(wk * a["mu"] for wk, a in zip(w, active))
    d = sum(wk * (a["mu"] - mu_hat) ** 2 for wk, a in zip(w, active))
    sigma_hat = math.sqrt(sum(wk * a["sigma"] ** 2 for wk, a in zip(w, active)) + d)
    return {"active_agents": [a["agent"] for a in active], "mu_hat": mu_hat, "disagreement": d, "sigma_hat": sigma_hat}


def _fitted_state(con, have: set[str], session: date, symbol: str, settings: Settings, agents: list[dict]) -> dict:
    """Each fitted agent's parameters in force at `session` (agent_fits at the fit date serving the
    session: calendar.cadence_session(session, cadence), on the symbol's own phase when staggered): GARCH
    omega/alpha/beta/nu, the HMM's fit and the session's filtered state probabilities (from its model_outputs row), the GPD threshold/shape/scale."""
    import re

    import polars as pl

    from trading_assets.domain import calendar
    from trading_assets.domain.agents import AGENTS, MARKET, is_fitted_agent

    if "agent_fits" not in have:
        return {}
    out = {}
    a_set = settings.agents
    for agent in AGENTS:
        if not is_fitted_agent(agent):
            continue
        cadence = agent.cadence(a_set)
        who = MARKET if getattr(agent, "market_level", False) else symbol
        if who == MARKET:
            grid = calendar.cadence_session(session, cadence)
        else:  # the symbol's own phase of the grid when the agent staggers its refits
            grid = agent.fit_dates(pl.DataFrame({"date": [session], "symbol": [symbol]}), a_set)["_grid"][0]
        row = _one(con, "SELECT fit_date, params, converged, n_obs, loglik, message, agent_version FROM agent_fits "
                        "WHERE fit_date = ? AND agent = ? AND symbol = ?", [grid, agent.name, who])
        entry = {"fit_date": grid, "symbol": who, "cadence_sessions": cadence}
        if row is None:
            entry["fit"] = None
        else:
            entry.update(params=_json_field(row["params"]), converged=row["converged"], n_obs=row["n_obs"],
                         loglik=row["loglik"], message=row["message"] or "", agent_version=row["agent_version"])
        if agent.name == "hmm_regime":
            text = next((a.get("explanation") or "" for a in agents if a.get("agent") == agent.name), "")
            m = re.search(r"p\(([^)]*)\)", text)
            entry["state_probabilities"] = (
                {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())} if m else None)
            entry["state"] = next((a.get("state") for a in agents if a.get("agent") == agent.name), None)
        out[agent.name] = entry
    return out


def explain(warehouse: Warehouse, session: date, symbol: str, settings: Settings | None = None) -> dict:
    """Every recorded step behind the decision on `symbol` at `session` (read-only).

    Sections are None (or empty lists) where a stage wrote nothing for this (session, symbol), so a
    partly run graph still explains what it has. Raises NoSuchDecision when no stage wrote anything,
    FileNotFoundError when there is no warehouse, WarehouseLockedError when a writer keeps the lock.
    """
    settings = settings or load_settings()
    if not Path(warehouse.db_path).exists():
        raise FileNotFoundError(f"no warehouse at {warehouse.db_path}: run a cycle first (trading-cycle --test)")
    with warehouse.connect(read_only=True) as con:
        have = _tables(con)

        def q1(table: str, sql: str, params: list) -> dict | None:
            return _one(con, sql, params) if table in have else None

        def qn(table: str, sql: str, params: list) -> list[dict]:
            return _rows(con, sql, params) if table in have else []

        k = [session, symbol]
        universe = q1("universe", "SELECT * FROM universe WHERE symbol = ?", [symbol])
        bar = q1("price_history", "SELECT * FROM price_history WHERE date = ? AND symbol = ?", k)
        prev_bar = q1(
            "price_history",
            "SELECT date, close, adj_close, provider FROM price_history WHERE date < ? AND symbol = ? ORDER BY date DESC LIMIT 1",
            k,
        )
        actions = qn("corporate_actions", "SELECT * FROM corporate_actions WHERE date = ? AND symbol = ? ORDER BY action", k)
        quality = q1("data_quality_log", "SELECT * FROM data_quality_log WHERE date = ? AND symbol = ?", k)
        feature_row = q1("features", "SELECT * FROM features WHERE date = ? AND symbol = ?", k)
        agents = qn("model_outputs", "SELECT * FROM model_outputs WHERE date = ? AND symbol = ? ORDER BY agent", k)
        trained = qn(
            "model_versions",
            "SELECT v.agent, v.family, v.role, v.model_version, v.train_date, r.first_label_date, r.last_label_date, r.purge_sessions, "
            "r.feature_version AS trained_feature_version, r.artifact_path, r.mlflow_run_id FROM model_versions v "
            "LEFT JOIN model_training_runs r ON r.agent = v.agent AND r.date = v.train_date WHERE v.date = ? ORDER BY v.family, v.role, v.agent",
            [session],
        ) if "model_training_runs" in have else []  # fmt: skip
        calib = qn("agent_calibration", "SELECT * EXCLUDE (date, run_id) FROM agent_calibration WHERE date = ? ORDER BY agent", [session])
        fitted = _fitted_state(con, have, session, symbol, settings, agents)
        meta = q1("decisions", "SELECT * FROM decisions WHERE date = ? AND symbol = ?", k)
        risk = q1("risk_decisions", "SELECT * FROM risk_decisions WHERE date = ? AND symbol = ?", k)
        orders = qn("orders", "SELECT * FROM order_blotter WHERE date = ? AND symbol = ? ORDER BY order_id", k)
        fills_today = qn("fills", "SELECT * FROM fills WHERE date = ? AND symbol = ? ORDER BY order_id", k)
        position = q1("positions", "SELECT * FROM positions WHERE date = ? AND symbol = ?", k)
        book = q1("portfolio", "SELECT * FROM portfolio WHERE date = ?", [session])
        cycle = q1(
            "cycle_meta",
            "SELECT cycle_id, run_id, window_start, window_end, settings_hash, feature_version, created_at FROM cycle_meta WHERE date = ?",
            [session],
        )
        audit = qn(
            "audit_log",
            "SELECT event_type, count(*) AS n, max(ts) AS last_ts FROM audit_log WHERE date = ? AND (symbol = ? OR symbol IS NULL) GROUP BY event_type ORDER BY event_type",
            k,
        )

    if not any([bar, quality, feature_row, agents, meta, risk, orders, position]):
        raise NoSuchDecision(f"nothing recorded for {symbol} on {session} in {warehouse.db_path}")

    features = None
    if feature_row:
        values = {c: v for c, v in feature_row.items() if c not in _FEATURE_BOOKKEEPING}
        key = {c: values[c] for c in KEY_FEATURES if c in values}
        features = {
            "key": key,
            "other": {c: v for c, v in sorted(values.items()) if c not in key},
            "history_rows": feature_row.get("history_rows"),
            "quality_flagged": feature_row.get("quality_flagged"),
            "benchmark_available": feature_row.get("benchmark_available"),
            "feature_version": feature_row.get("feature_version"),
            "run_id": feature_row.get("run_id"),
        }

    meta_math = None
    if meta:
        beta = settings.meta.disagreement_beta
        var = meta.get("disagreement")
        penalty = math.exp(-beta * var) if isinstance(var, (int, float)) and math.isfinite(var) else None
        # what the Meta-Brain read: no shadow model, each confidence times its calibration factor when calibrated
        factor = {c["agent"]: c.get("factor") for c in calib}
        seen = [
            {**a, "confidence": (a.get("confidence") or 0.0) * (factor.get(a["agent"]) or 0.0) if calib else a.get("confidence")}
            for a in agents if a.get("role") != "shadow"
        ]  # fmt: skip
        recomputed = recompute_ensemble(seen, settings.meta.min_confidence, settings.meta.sigma_agent)
        meta_math = {
            **{c: meta.get(c) for c in ("mu_hat", "sigma_hat", "disagreement", "mu_hat_adj", "z_score", "kelly_fraction",
                                         "target_weight_raw", "n_agents", "regime")},
            "penalty": penalty,
            "recomputed_from_agents": recomputed,
            "pre_risk_decision": meta.get("pre_risk_decision"),
            "reason_codes": list(meta.get("reason_codes") or []),
            "parameters": {
                "disagreement_beta": beta,
                "z_clip": settings.meta.z_clip,
                "kelly_gamma": settings.meta.kelly_gamma,
                "min_trade_weight": settings.meta.min_trade_weight,
            },
            "formulas": {
                "mu_hat": "sum_k w_k mu_k, w_k = c_k / sum_j c_j over active agents (c_k >= min_confidence)",
                "disagreement": "D = sum_k w_k (mu_k - mu_hat)^2",
                "sigma_hat": "sqrt(sum_k w_k sigma_k^2 + D)",
                "penalty": "exp(-beta * D)",
                "mu_hat_adj": "mu_hat * penalty",
                "z_score": "(mu_hat_adj - median) / (1.4826 MAD) across the session, clipped at +/- z_clip",
                "kelly_fraction": "gamma * mu_hat_adj / sigma_hat^2; target_weight_raw = max(0, kelly_fraction)",
            },
            "cycle_id": meta.get("cycle_id"),
            "run_id": meta.get("run_id"),
        }

    risk_out = None
    if risk:
        risk_out = {**risk, "reason_codes": list(risk.get("reason_codes") or []), "adjustments": _json_field(risk.get("adjustments"))}

    runs = {
        stage: row.get("run_id")
        for stage, row in (
            ("price_history", bar), ("data_quality", quality), ("features", feature_row), ("decisions", meta),
            ("risk_decisions", risk), ("positions", position), ("portfolio", book), ("cycle_summary", cycle),
        )
        if row
    }  # fmt: skip
    runs.update({f"agent:{a['agent']}": a.get("run_id") for a in agents})
    if orders:
        runs["orders"] = orders[0].get("run_id")
    versions = {
        "settings_hash": (cycle or {}).get("settings_hash") or settings.settings_hash(),
        "settings_hash_source": "cycle_meta" if cycle and cycle.get("settings_hash") else "current settings",
        "feature_version": (features or {}).get("feature_version") or (cycle or {}).get("feature_version"),
        "agent_versions": {a["agent"]: a.get("agent_version") for a in agents},
        # the exact trained model behind each learned agent's row (a rerun of the session serves the same one)
        "model_versions": {m["agent"]: {k2: m.get(k2) for k2 in ("family", "role", "model_version", "train_date", "first_label_date",
                                                                  "last_label_date", "purge_sessions", "artifact_path", "mlflow_run_id")}
                           for m in trained},  # fmt: skip
        "confidence_calibration": {c["agent"]: {k2: c.get(k2) for k2 in ("as_of", "ic_n", "ic_mean", "ic_t", "ic_shrunk", "factor")} for c in calib},
        "cycle_id": (risk or {}).get("cycle_id") or (meta or {}).get("cycle_id") or (cycle or {}).get("cycle_id"),
    }
    if book and book.get("sector_exposure"):
        book = {**book, "sector_exposure": _json_field(book["sector_exposure"])}
    if book and book.get("optimizer"):
        book = {**book, "optimizer": _json_field(book["optimizer"])}
    if quality and quality.get("details"):
        quality = {**quality, "details": _json_field(quality["details"]), "reason_codes": list(quality.get("reason_codes") or [])}

    return _clean(
        {
            "date": session,
            "symbol": symbol,
            "universe": universe,
            "bars": {"bar": bar, "previous": prev_bar, "corporate_actions": actions},
            "quality": quality,
            "features": features,
            "agents": agents,
            "fitted_state": fitted,
            "meta_brain": meta_math,
            "risk": risk_out,
            "orders": orders,
            "fills_at_this_open": fills_today,
            "position": position,
            "portfolio": book,
            "cycle": cycle,
            "runs": runs,
            "versions": versions,
            "audit_events": audit,
            "warehouse": str(warehouse.db_path),
        }
    )


# --- text rendering --------------------------------------------------------------------------------
def _fmt(v, digits: int = 6) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e7):
            return f"{v:.{digits - 2}e}"
        return f"{v:,.{digits}g}" if abs(v) >= 1e5 else f"{v:.{digits}g}"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v) or "-"
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True, default=str)
    return str(v)


def render_text(x: dict) -> str:
    """The explanation as readable text, stage by stage in the order the graph runs."""
    out: list[str] = []
    w = out.append
    uni = x.get("universe") or {}
    w(f"{x['symbol']} on {x['date']}" + (f"  ({uni.get('name')}, {uni.get('sector')})" if uni else "  (not in the current universe)"))
    w("=" * 78)

    bars = x["bars"]
    w("\n1. Bars")
    b = bars.get("bar")
    if b:
        w(f"   open {_fmt(b.get('open'))}  high {_fmt(b.get('high'))}  low {_fmt(b.get('low'))}  close {_fmt(b.get('close'))}"
          f"  adj_close {_fmt(b.get('adj_close'))}  volume {_fmt(b.get('volume'))}")
        w(f"   provider {b.get('provider')}{' (synthetic)' if b.get('is_synthetic') else ''}"
          f"  duplicates received {b.get('duplicate_count', 0)}  run {b.get('run_id')}")
    else:
        w("   no bar recorded for this session")
    p = bars.get("previous")
    if p:
        w(f"   previous bar {p['date']}: close {_fmt(p.get('close'))} ({p.get('provider')})")
    for a in bars.get("corporate_actions") or []:
        w(f"   corporate action: {a['action']} {_fmt(a['value'])} (price factor {_fmt(a.get('price_factor'))})")

    w("\n2. Data quality")
    qd = x.get("quality")
    if qd:
        w(f"   score {_fmt(qd.get('score'), 3)}  {'PASSED' if qd.get('passed') else 'FAILED'}  reasons: {_fmt(qd.get('reason_codes'))}")
        if qd.get("details"):
            w(f"   details: {_fmt(qd['details'])}")
    else:
        w("   not assessed")

    w("\n3. Key features")
    f = x.get("features")
    if f:
        for name, v in f["key"].items():
            w(f"   {name:<18} {_fmt(v)}")
        w(f"   ({len(f['other'])} other features; history rows {_fmt(f.get('history_rows'))}, quality flagged "
          f"{_fmt(f.get('quality_flagged'))}, version {f.get('feature_version')})")
    else:
        w("   no feature row")

    w("\n4. Agents")
    if x["agents"]:
        w(f"   {'agent':<16}{'mu':>12}{'sigma':>12}{'conf':>7}  explanation")
        for a in x["agents"]:
            w(f"   {a['agent']:<16}{_fmt(a.get('mu'), 4):>12}{_fmt(a.get('sigma'), 4):>12}{_fmt(a.get('confidence'), 2):>7}  {a.get('explanation') or ''}")
    else:
        w("   no agent outputs")

    fs = x.get("fitted_state") or {}
    if fs:
        w("   fitted state in force (agent_fits at the grid session):")
        for name, e in fs.items():
            p = e.get("params") or {}
            head = f"   {name:<12} fit {e.get('fit_date')} ({e.get('symbol')}, every {e.get('cadence_sessions')} sessions)"
            if not p:
                w(f"{head}: no fit ({e.get('message') or 'none stored'})")
                continue
            if name == "garch":
                detail = (f"omega {_fmt(p.get('omega'), 5)} alpha {_fmt(p.get('alpha'), 4)} beta {_fmt(p.get('beta'), 4)} "
                          f"nu {_fmt(p.get('nu'), 3)}")
            elif name == "hmm_regime":
                detail = f"state {e.get('state')} probabilities {_fmt(e.get('state_probabilities'))} (seed {p.get('seed')}, loglik {_fmt(p.get('loglik'), 2)})"
            elif name == "evt_tail":
                detail = (f"GPD threshold u {_fmt(p.get('threshold'), 5)} shape xi {_fmt(p.get('xi'), 4)} scale beta "
                          f"{_fmt(p.get('beta'), 5)} N_u {p.get('n_exceed')} VaR99 {_fmt(p.get('var99'), 4)} ES99 {_fmt(p.get('es99'), 4)}")
            else:
                detail = _fmt(p)
            conv = "" if e.get("converged") else f" [not converged: {e.get('message')}]"
            w(f"{head}: {detail}{conv}")

    w("\n5. Meta-Brain")
    m = x.get("meta_brain")
    if m:
        pr = m["parameters"]
        rc = m.get("recomputed_from_agents")
        if rc:
            w(f"   from the {len(rc['active_agents'])} active agents (w_k = c_k / sum c): mu_hat {_fmt(rc['mu_hat'])}, "
              f"D {_fmt(rc['disagreement'])}, sigma_hat {_fmt(rc['sigma_hat'])}")
        w(f"   mu_hat {_fmt(m.get('mu_hat'))}  sigma_hat {_fmt(m.get('sigma_hat'))}  agents {m.get('n_agents')}  regime {m.get('regime')}")
        w(f"   disagreement Var_k(mu_k) = {_fmt(m.get('disagreement'))}; penalty exp(-{_fmt(pr['disagreement_beta'])} x Var) = {_fmt(m.get('penalty'), 4)}")
        w(f"   mu_hat_adj = mu_hat x penalty = {_fmt(m.get('mu_hat_adj'))}")
        w(f"   z = {_fmt(m.get('z_score'), 4)} (clip +/-{_fmt(pr['z_clip'])});  Kelly fraction (gamma {_fmt(pr['kelly_gamma'])}) = "
          f"{_fmt(m.get('kelly_fraction'), 4)};  target weight {_fmt(m.get('target_weight_raw'), 4)}")
        w(f"   pre-risk decision {m.get('pre_risk_decision')}  reasons: {_fmt(m.get('reason_codes'))}")
    else:
        w("   no Meta-Brain decision")

    w("\n6. Risk gate (final decision), after the portfolio method's target")
    r = x.get("risk")
    bk0 = x.get("portfolio") or {}
    if bk0.get("method"):
        w(f"   method {bk0.get('method')}: this name's target {_fmt((r or {}).get('optimizer_weight'), 4)}"
          + (f";  optimizer {bk0.get('optimizer_status')}: expected return {_fmt(bk0.get('expected_return'))}"
             f" - risk {_fmt(bk0.get('risk_penalty'))} - cost {_fmt(bk0.get('cost_penalty'))}"
             f", ex-ante vol {_fmt(bk0.get('ex_ante_vol'), 4)}" if bk0.get("optimizer_status") else ""))
        opt = bk0.get("optimizer")
        if opt:
            w(f"   optimizer: {_fmt(opt)}")
    if bk0.get("tail_method"):
        w(f"   book scaling: volatility x{_fmt(bk0.get('vol_scale'), 4)}, drawdown x{_fmt(bk0.get('drawdown_scale'), 4)}, "
          f"recovery x{_fmt(bk0.get('recovery_scale'), 4)};  approved book CVaR95 {_fmt(bk0.get('cvar_95'), 4)}, "
          f"P(one-day loss > limit) {_fmt(bk0.get('tail_prob'), 4)} by "
          + (f"EVT (GPD threshold u {_fmt(bk0.get('tail_threshold'), 5)}, shape xi {_fmt(bk0.get('tail_xi'), 4)}, "
             f"scale beta {_fmt(bk0.get('tail_beta'), 5)}, {bk0.get('tail_exceedances')} exceedances)"
             if bk0.get("tail_method") == "evt" else "the historical / Student-t measures"
             + (f" ({bk0.get('tail_exceedances')} exceedances, too few for the GPD)" if bk0.get("tail_exceedances") is not None else "")))
    if r:
        w(f"   {r.get('decision')}  reasons: {_fmt(r.get('reason_codes'))}  trading state {r.get('trading_state')}")
        w(f"   weight: current {_fmt(r.get('current_weight'), 4)} -> raw target {_fmt(r.get('target_weight_raw'), 4)}"
          f" -> approved {_fmt(r.get('approved_weight'), 4)};  order quantity {_fmt(r.get('order_quantity'))}")
        adj = r.get("adjustments")
        if adj:
            w(f"   adjustments: {_fmt(adj)}")
    else:
        w("   no final decision")

    w("\n7. Order and fill")
    if x["orders"]:
        for o in x["orders"]:
            w(f"   {o.get('side')} {_fmt(o.get('quantity'))} @ ref {_fmt(o.get('reference_price'))} ({o.get('mode')}), order {o.get('order_id')}")
            w(f"   fill: {o.get('status')}" + (f" on {o.get('fill_date')} at {_fmt(o.get('fill_price'))}, commission {_fmt(o.get('commission'))}, "
                                               f"slippage {_fmt(o.get('slippage_cost'))}" if o.get("fill_date") else ""))
    else:
        w("   no order")
    for fl in x.get("fills_at_this_open") or []:
        w(f"   filled at this session's open (order of {fl.get('order_date')}): {fl.get('side')} {_fmt(fl.get('quantity'))} at {_fmt(fl.get('price'))}")

    w("\n8. Position and book after the close")
    pos = x.get("position")
    w(f"   position {_fmt(pos.get('quantity'))} shares, value {_fmt(pos.get('market_value'))}, weight {_fmt(pos.get('weight'), 4)}"
      if pos else "   no position")
    bk = x.get("portfolio")
    if bk:
        w(f"   NAV {_fmt(bk.get('nav'))}  drawdown {_fmt(bk.get('drawdown'), 4)}  leverage {_fmt(bk.get('leverage'), 4)}"
          f"  state {bk.get('trading_state')}  CVaR95 {_fmt(bk.get('cvar_95'), 4)}")

    w("\n9. Runs and versions")
    v = x["versions"]
    w(f"   cycle {v.get('cycle_id')}  settings {v.get('settings_hash')} ({v.get('settings_hash_source')})  features {v.get('feature_version')}")
    if v.get("agent_versions"):
        w(f"   agents: {_fmt(v['agent_versions'])}")
    for agent, m in (v.get("model_versions") or {}).items():
        w(f"   model {agent:<28} {m.get('role'):<9} version {m.get('model_version') or 'none (NOT_TRAINED)'}"
          + (f", trained {m.get('train_date')} on labels {m.get('first_label_date')}..{m.get('last_label_date')} (purge {m.get('purge_sessions')}),"
             f" mlflow run {m.get('mlflow_run_id')}" if m.get("model_version") else ""))
    if v.get("confidence_calibration"):
        as_of = next((c.get("as_of") for c in v["confidence_calibration"].values() if c.get("as_of")), None)
        w(f"   confidence calibration (rolling OOS rank IC -> shrunk by its t -> factor{f', as of {as_of}' if as_of else ''}): "
          + ", ".join(f"{a} {_fmt(c.get('ic_mean'), 4)} -> {_fmt(c.get('ic_shrunk'), 4)} -> {_fmt(c.get('factor'), 2)}"
                      for a, c in v["confidence_calibration"].items()))
    for stage, run_id in x["runs"].items():
        w(f"   {stage:<20} run {run_id}")
    if x.get("audit_events"):
        w("   audit: " + ", ".join(f"{e['event_type']} x{e['n']}" for e in x["audit_events"]))
    return "\n".join(out)


def explain_main(session: date, symbol: str, as_json: bool = False) -> int:
    """CLI entry: print the explanation; 0 found, 1 nothing recorded / no warehouse / locked, 2 bad symbol."""
    from trading_assets.universe import UniverseError, validate_symbol

    try:
        symbol = validate_symbol(symbol.strip().upper(), "--symbol: ")
    except UniverseError as exc:
        print(f"trading-cycle explain: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = load_settings()
    wh = Warehouse(settings.db_path, settings.audit_dir, lock_timeout_s=load_ops_settings().reader_lock_timeout_s)
    try:
        result = explain(wh, session, symbol, settings)
    except (FileNotFoundError, NoSuchDecision, WarehouseLockedError) as exc:
        print(f"trading-cycle explain: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(json.dumps(result, indent=2, sort_keys=False, default=str) if as_json else render_text(result))
    return EXIT_OK
