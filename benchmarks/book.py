"""Wall time of risk + execution (domain.portfolio.run_book) over generated inputs.

    /work/venv/bin/python benchmarks/book.py [--symbols 250] [--sessions 1260] [--asset] [--bare] [--no-domain]
        [--profile FILE] [--hashes FILE] [--method kelly_mv|kelly_diagonal|topk_dropout]

Generates a seeded market (random-walk prices, 11 sectors, daily decisions with targets of 0-14%,
some pre-risk REJECTs, a risk-off stretch), then times the pure walk of the book session by session
(risk gate + fills + marks + orders). --asset also times the Dagster multi-asset end to end
(reads, walk, five table writes, audit of every decision/order/fill, checks) on a tmp warehouse.
--bare times the same body without Dagster (defs.book_walk.write_book, the run's shared database as the
resource opens it), split into reads, walk, writes, audit and checks (the Dagster figure adds the
ephemeral instance's event log, slow for the 5,000 partition events).
Prints figures (wall times, peak RSS of the process); asserts nothing about time.
--hashes FILE (with --asset or --bare) writes the Warehouse.table_hash of the five book tables plus a digest of the audit
content (audit_log and the JSONL mirror without the volatile event_id/ts/run_id) as JSON, to compare
two versions of the code. --profile FILE dumps a cProfile of the asset (or bare) run (pstats format).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date

import numpy as np
import polars as pl

METHOD = "kelly_mv"  # --method


def generate(n_sym: int, n_sess: int, seed: int = 11):
    from trading_assets.domain import calendar

    sessions = calendar.sessions(date(2021, 1, 4), date(2027, 6, 30))
    hist = sessions[: n_sess + 252]
    window = hist[252:]
    rng = np.random.default_rng(seed)
    syms = [f"S{i:03d}" for i in range(n_sym)]
    sectors = {s: f"Sector{i % 11}" for i, s in enumerate(syms)}
    logret = rng.standard_t(4, size=(len(hist), n_sym)) * 0.012 + 0.0002
    close = 50.0 * np.exp(np.cumsum(logret, axis=0))
    open_ = close * np.exp(rng.normal(0, 0.003, size=close.shape))
    target = np.clip(rng.normal(0.006, 0.02, size=close.shape), 0, 0.14)
    reject = rng.random(close.shape) < 0.02
    return hist, window, syms, sectors, logret, close, open_, target, reject


def run_domain(n_sym: int, n_sess: int) -> None:
    from trading_assets.domain import portfolio as pf
    from trading_assets.settings import load_settings

    hist, window, syms, sectors, logret, close, open_, target, reject = generate(n_sym, n_sess)
    settings = load_settings({"TRADING_PORTFOLIO_METHOD": METHOD})
    simple = np.expm1(logret)
    t0 = time.perf_counter()
    inputs = []
    for k, d in enumerate(window):
        i = k + 252
        regime = "risk_off" if 400 <= k < 460 else "neutral"
        inputs.append(pf.SessionInputs(
            date=d, cycle_id=f"{d}-bench",
            decisions=pl.DataFrame({
                "symbol": syms, "mu_hat": [0.001] * n_sym, "sigma_hat": [0.012] * n_sym,
                "target_weight_raw": target[i], "pre_risk_decision": np.where(reject[i], "REJECT", "EXECUTE_BUY"),
                "reason_codes": [["DATA_QUALITY"] if r else ["POSITIVE_EDGE"] for r in reject[i]],
                "regime": [regime] * n_sym}),
            prices=pl.DataFrame({"symbol": syms, "open": open_[i], "close": close[i]}),
            features=pl.DataFrame({"symbol": syms, "adv_shares_21d": np.full(n_sym, 2e6), "vol_20": np.full(n_sym, 0.19)}),
            returns=simple[i - 251: i + 1], return_symbols=syms, sectors=sectors))
    t1 = time.perf_counter()
    c1 = time.process_time()
    out = pf.run_book(pf.initial_state(settings), inputs, settings)
    t2 = time.perf_counter()
    c2 = time.process_time()
    counts = dict(out.risk_decisions.group_by("decision").len().sort("decision").rows())
    print(f"domain walk: {n_sym} symbols x {len(window)} sessions")
    print(f"  build inputs {t1 - t0:.2f} s; risk + execution (run_book) {t2 - t1:.2f} s "
          f"({(t2 - t1) / len(window) * 1e3:.2f} ms/session; CPU {c2 - c1:.2f} s)")
    print(f"  rows: risk_decisions {out.risk_decisions.height}, orders {out.orders.height}, fills {out.fills.height}, "
          f"positions {out.positions.height}; decisions {counts}")
    p = out.portfolio
    print(f"  final NAV {p['nav'][-1]:,.0f}, max drawdown {p['drawdown'].max():.2%}, "
          f"mean leverage {p['leverage'].mean():.2f}, max CVaR {p['cvar_95'].max():.4f}, "
          f"states {dict(p.group_by('trading_state').len().rows())}")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def audit_digest(wh, audit_dir: str) -> dict:
    """sha256 of the audit content without the volatile columns: table rows and JSONL lines."""
    rows = wh.read("SELECT cycle_id, event_type, date, symbol, payload FROM audit_log ORDER BY ALL")
    h = hashlib.sha256()
    for r in rows.iter_rows():
        h.update(repr(r[:4]).encode())
        h.update(json.dumps(json.loads(r[4]), sort_keys=True).encode())
    lines = []
    for name in sorted(os.listdir(audit_dir)):
        with open(os.path.join(audit_dir, name), encoding="utf-8") as fh:
            for line in fh:
                e = json.loads(line)
                for k in ("event_id", "ts", "run_id"):
                    e.pop(k, None)
                lines.append(name + json.dumps(e, sort_keys=True))
    lines.sort()
    hj = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    # byte level: the payload texts as stored, the JSONL lines with the volatile values blanked
    hb = hashlib.sha256()
    for r in rows.iter_rows():
        hb.update(repr(r).encode())
    raw = []
    volatile = re.compile(r'^\{"event_id": "[0-9a-f]+", "ts": "[^"]*", "run_id": "[^"]*", ')
    for name in sorted(os.listdir(audit_dir)):
        with open(os.path.join(audit_dir, name), encoding="utf-8") as fh:
            raw.extend(name + volatile.sub("{", line) for line in fh)
    raw.sort()
    return {"audit_log": h.hexdigest(), "audit_jsonl": hj, "audit_rows": rows.height, "jsonl_lines": len(lines),
            "audit_log_bytes": hb.hexdigest(), "audit_jsonl_bytes": hashlib.sha256("".join(raw).encode()).hexdigest()}


def setup_warehouse(tmp: str, n_sym: int, n_sess: int):
    """Write the generated market (universe, features, price_history, decisions) into a warehouse in tmp."""
    from trading_assets.store.warehouse import Warehouse

    hist, window, syms, sectors, logret, close, open_, target, reject = generate(n_sym, n_sess)
    wh = Warehouse(f"{tmp}/trading.duckdb", f"{tmp}/audit")
    wh.ensure_schema()
    wh.ensure_columns("features", {"adv_shares_21d": "DOUBLE", "vol_20": "DOUBLE", "logret_1": "DOUBLE"})
    wh.replace_table("universe", pl.DataFrame({"symbol": syms, "name": syms, "sector": [sectors[s] for s in syms],
                                               "is_benchmark": [False] * n_sym, "source_file": ["bench"] * n_sym}))
    nd = len(hist)
    long = lambda a: a.reshape(-1)  # noqa: E731  (row-major: date-major, symbol-minor)
    dates = np.repeat(np.array(hist, dtype="datetime64[D]"), n_sym)
    symcol = np.tile(syms, nd)
    wh.replace_window("features", pl.DataFrame({"date": dates, "symbol": symcol, "adv_shares_21d": 2e6, "vol_20": 0.19,
                                                "logret_1": long(logret), "feature_version": "bench"}), hist[0], hist[-1])
    k0 = 252 * n_sym
    wh.replace_window("price_history", pl.DataFrame({
        "date": dates[k0:], "symbol": symcol[k0:], "open": long(open_)[k0:], "close": long(close)[k0:],
        "adj_close": long(close)[k0:], "volume": 1e6, "provider": "synthetic", "is_synthetic": True}), window[0], window[-1])
    wh.replace_window("decisions", pl.DataFrame({
        "date": dates[k0:], "symbol": symcol[k0:], "mu_hat": 0.001, "sigma_hat": 0.012,
        "target_weight_raw": long(target)[k0:], "pre_risk_decision": np.where(long(reject)[k0:], "REJECT", "EXECUTE_BUY"),
        "reason_codes": [["DATA_QUALITY"] if r else ["POSITIVE_EDGE"] for r in long(reject)[k0:]],
        "regime": "neutral", "cycle_id": "bench"}), window[0], window[-1])
    return wh, window


def run_asset(n_sym: int, n_sess: int, profile: str | None = None, hashes: str | None = None) -> None:
    """Time the asset in this process; the market is written by a child process first, so the peak
    RSS printed is the asset's (plus Dagster's and the imports')."""
    tmp = tempfile.mkdtemp()
    os.environ["TRADING_DATA_DIR"] = tmp
    os.environ["DAGSTER_HOME"] = tmp
    subprocess.run([sys.executable, __file__, "--setup-only", tmp, "--symbols", str(n_sym), "--sessions", str(n_sess)],
                   check=True)
    from trading_assets.store.warehouse import Warehouse
    from trading_assets_tests.execution.book_fixtures import materialize_book

    wh = Warehouse(f"{tmp}/trading.duckdb", f"{tmp}/audit")
    window = generate(1, n_sess)[1]
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    c0 = time.process_time()
    if profile:
        import cProfile

        cProfile.runctx("materialize_book(wh, window[0], window[-1])", globals(), locals(), profile)
    else:
        materialize_book(wh, window[0], window[-1])
    t1 = time.perf_counter()
    c1 = time.process_time()
    print(f"Dagster asset `book` (reads + walk + writes + audit + checks), {n_sym} x {len(window)}: {t1 - t0:.1f} s "
          f"(CPU of this process {c1 - c0:.1f} s)")
    print(f"  audit events: {wh.read('SELECT count(*) AS n FROM audit_log')['n'][0]}")
    print(f"  peak RSS of the process: {peak_rss_mb():.0f} MB (before the asset: {rss0:.0f} MB)")
    if hashes:
        from trading_assets.defs.book_writes import BOOK_TABLES

        out = {t: wh.table_hash(t) for t in BOOK_TABLES} | audit_digest(wh, f"{tmp}/audit")
        with open(hashes, "w") as fh:
            json.dump(out, fh, indent=1, sort_keys=True)
        print(f"  hashes -> {hashes}: {out}")


def run_bare(n_sym: int, n_sess: int, profile: str | None = None, hashes: str | None = None) -> None:
    """The asset's body (defs.book_walk.write_book) without Dagster, phase by phase; peak RSS as in run_asset."""
    tmp = tempfile.mkdtemp()
    os.environ["TRADING_DATA_DIR"] = tmp
    subprocess.run([sys.executable, __file__, "--setup-only", tmp, "--symbols", str(n_sym), "--sessions", str(n_sess)],
                   check=True)
    from trading_assets.defs import book_audit, book_checks, book_inputs, book_walk, book_writes
    from trading_assets.domain import execution as ex
    from trading_assets.domain import portfolio as pf
    from trading_assets.settings import load_settings
    from trading_assets.store import warehouse as W

    wh = W.Warehouse(f"{tmp}/trading.duckdb", f"{tmp}/audit")
    window = generate(1, n_sess)[1]
    settings = load_settings({"TRADING_PORTFOLIO_METHOD": METHOD})
    spent: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    def timed_inputs(*a, **k):  # the reads happen inside the walk's loop: time each next()
        it = timed_inputs.__wrapped__(*a, **k)
        while True:
            t = time.perf_counter()
            try:
                x = next(it)
            except StopIteration:
                return
            finally:
                spent["reads"] = spent.get("reads", 0.0) + time.perf_counter() - t
            yield x

    timed_inputs.__wrapped__ = book_inputs.session_inputs
    patches = {(book_inputs, "session_inputs"): timed_inputs,
               (pf, "run_book"): timed("walk (incl. reads)", pf.run_book),
               (W.Warehouse, "replace_window"): timed("writes", W.Warehouse.replace_window),
               (book_writes, "replace_window_in_session_blocks"):
                   timed("writes", book_writes.replace_window_in_session_blocks),
               (book_audit, "append_audit"): timed("audit", book_audit.append_audit),
               (book_checks, "limit_breaches"): timed("checks", book_checks.limit_breaches),
               (book_checks, "check_positions"): timed("checks", book_checks.check_positions)}
    originals = {k: getattr(*k) for k in patches}
    for (obj, name), fn in patches.items():
        setattr(obj, name, fn)
    share = getattr(W, "share_database", None)  # the run's one open database, as the Dagster resource does
    if share:
        share(wh.db_path)
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    try:
        call = "book_walk.write_book(wh, settings, ex.get_broker(settings), window, 'bench-run')"
        if profile:
            import cProfile

            cProfile.runctx(call, globals(), locals(), profile)
        else:
            eval(call)
        total = time.perf_counter() - t0
    finally:
        for (obj, name), fn in originals.items():
            setattr(obj, name, fn)
        if share:
            W.unshare_database(wh.db_path)  # closes (checkpoints) the database: the run's end, not the step's
    spent["walk"] = spent.pop("walk (incl. reads)") - spent.get("reads", 0.0)
    print(f"book body without Dagster (defs.book_walk.write_book), {n_sym} x {len(window)}: {total:.1f} s = "
          + ", ".join(f"{k} {v:.1f}" for k, v in spent.items()) + f", other {total - sum(spent.values()):.1f}")
    print(f"  peak RSS of the process: {peak_rss_mb():.0f} MB (before the body: {rss0:.0f} MB)")
    if hashes:
        out = {t: wh.table_hash(t) for t in book_writes.BOOK_TABLES} | audit_digest(wh, f"{tmp}/audit")
        with open(hashes, "w") as fh:
            json.dump(out, fh, indent=1, sort_keys=True)
        print(f"  hashes -> {hashes}: {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=250)
    ap.add_argument("--sessions", type=int, default=1260)
    ap.add_argument("--asset", action="store_true")
    ap.add_argument("--bare", action="store_true", help="time the asset's body without Dagster, phase by phase")
    ap.add_argument("--no-domain", action="store_true", help="skip the pure walk (time the asset only)")
    ap.add_argument("--profile", help="cProfile output file for the asset run")
    ap.add_argument("--hashes", help="write the book tables' hashes and the audit digest (JSON) to this file")
    ap.add_argument("--method", default="kelly_mv", help="settings.portfolio.method (default kelly_mv)")
    ap.add_argument("--setup-only", help=argparse.SUPPRESS)  # internal: write the market into this folder, exit
    a = ap.parse_args()
    METHOD = os.environ["TRADING_PORTFOLIO_METHOD"] = a.method
    if a.setup_only:
        setup_warehouse(a.setup_only, a.symbols, a.sessions)
        sys.exit(0)
    if not a.no_domain:
        run_domain(a.symbols, a.sessions)
        print(f"  peak RSS of the process: {peak_rss_mb():.0f} MB")
    if a.asset:
        run_asset(a.symbols, a.sessions, a.profile, a.hashes)
    if a.bare:
        run_bare(a.symbols, a.sessions, a.profile, a.hashes)
