"""The UI for real: a backfill launched through the webserver's GraphQL (what the UI's "Materialize
all > partition range" does) becomes ONE run that succeeds; then headless Chromium shows every stage
in the lineage graph, an asset's checks and the schedule, and saves the lineage screenshot."""

from __future__ import annotations

import os
import time
from datetime import date

import pytest

from trading_assets.settings import PROJECT_ROOT
from trading_assets.domain import calendar
from trading_assets_tests.ops.conftest import HISTORY_START, RUN_CONFIG
from trading_assets_tests.ops.test_queue import run_state

pytestmark = pytest.mark.slow  # dagster dev, real runs and a backfill through the daemon

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STAGES = ["universe", "price_history", "corporate_actions", "data_quality", "features", "agent_outputs", "meta_decisions",
          "risk_decisions", "orders", "positions", "portfolio", "cycle_summary"]  # fmt: skip
SCREENSHOT = PROJECT_ROOT / "data" / "lineage.png"

ASSET_NODES = """{ assetNodes { assetKey { path } isPartitioned groupName dependencyKeys { path }
  assetChecksOrError { ... on AssetChecks { checks { name } } } } }"""
# (asset, one of its upstream assets): the lineage the graph must draw
EDGES = [("price_history", "universe"), ("data_quality", "price_history"), ("features", "data_quality"),
         ("agent_outputs", "features"), ("meta_decisions", "agent_outputs"), ("risk_decisions", "meta_decisions"),
         ("cycle_summary", "portfolio")]  # fmt: skip
BACKFILL = """
mutation($p: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $p) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
  }
}"""
BACKFILL_STATE = "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status runs { runId } } } }"
# contiguous with the queue test's sessions (2024-01-02, 2024-01-03): the book is path dependent and
# refuses a range whose previous session is missing
RANGE = ("2024-01-04", "2024-01-10")
RANGE2 = ("2024-01-11", "2024-01-18")


def _nodes(dev) -> list[dict]:
    return dev.graphql(ASSET_NODES)["assetNodes"]


def test_graph_groups_and_checks_through_the_webserver(dagster_dev):
    nodes = {"/".join(n["assetKey"]["path"]): n for n in _nodes(dagster_dev)}
    assert set(STAGES) <= set(nodes)
    groups = {k: nodes[k]["groupName"] for k in STAGES}
    assert groups["universe"] == "reference" and groups["price_history"] == "market_data" and groups["cycle_summary"] == "portfolio"
    for asset, upstream in EDGES:
        assert upstream in {"/".join(d["path"]) for d in nodes[asset]["dependencyKeys"]}, (asset, upstream)
    checks = {c["name"] for c in nodes["price_history"]["assetChecksOrError"]["checks"]}
    assert "price_history_fresh" in checks and len(checks) >= 2


def _materialized(dev, key: str) -> set[str]:
    q = "query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { ... on AssetNode { materializedPartitionsAndStatus: assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } } } } }"
    node = dev.graphql(q, {"k": {"path": [key]}})["assetNodeOrError"]
    out: set[str] = set()
    for r in node["materializedPartitionsAndStatus"]["ranges"]:
        if r["status"] == "MATERIALIZED":
            out |= {d.isoformat() for d in calendar.sessions(date.fromisoformat(r["startKey"]), date.fromisoformat(r["endKey"]))}
    return out


def ensure_book_through(dev, day: str) -> None:
    """Materialize every session from the history start to `day` that the book lacks (one range run)."""
    from trading_assets_tests.ops.test_queue import launch_range, wait_done

    needed = {d.isoformat() for d in calendar.sessions(HISTORY_START, date.fromisoformat(day))}
    missing = sorted(needed - _materialized(dev, "portfolio"))
    if missing:
        states, _ = wait_done(dev, [launch_range(dev, "trading_cycle", missing[0], day)])
        assert all(s["status"] == "SUCCESS" for s in states.values()), dev.tail()


def test_a_range_launched_from_the_ui_is_one_run_that_walks_every_session(dagster_dev):
    """Jobs > trading_cycle > Launchpad with the range tags (what `trading-cycle --start --end` does): ONE run."""
    from trading_assets_tests.ops.test_queue import launch_range, wait_done

    ensure_book_through(dagster_dev, calendar.previous_session(date.fromisoformat(RANGE[0])).isoformat())
    run_id = launch_range(dagster_dev, "trading_cycle", *RANGE)
    states, _ = wait_done(dagster_dev, [run_id])
    assert states[run_id]["status"] == "SUCCESS", dagster_dev.tail()
    runs = dagster_dev.graphql('{ runsOrError { ... on Runs { results { runId } } } }')["runsOrError"]["results"]
    sessions = {d.isoformat() for d in calendar.sessions(date.fromisoformat(RANGE[0]), date.fromisoformat(RANGE[1]))}
    for key in ("price_history", "features", "risk_decisions", "positions", "portfolio", "cycle_summary"):
        assert sessions <= _materialized(dagster_dev, key), key
    assert run_id in {r["runId"] for r in runs}


def test_an_asset_backfill_from_the_ui_runs_each_range_once_and_succeeds(dagster_dev):
    """The UI's "Materialize all" over a range (launchPartitionBackfill on every session asset) is ONE run.

    Measured on Dagster 1.13: a DECLARED self-dependency would split it in two (the asset-backfill daemon
    never runs a self-dependent asset with other assets: "Self-dependant assets cannot be materialized in
    the same run as other assets", dagster/_core/execution/asset_backfill.py), so the book keeps its
    previous-session state itself and declares no self-dependency.
    """
    # the book's previous sessions, and the universe (unpartitioned) the backfill trades on
    ensure_book_through(dagster_dev, calendar.previous_session(date.fromisoformat(RANGE2[0])).isoformat())
    selection = [{"path": n["assetKey"]["path"]} for n in _nodes(dagster_dev) if n["isPartitioned"]]
    params = {
        "partitionsByAssets": [{"assetKey": a, "partitions": {"range": {"start": RANGE2[0], "end": RANGE2[1]}}} for a in selection],
        "runConfigData": RUN_CONFIG,
        "tags": [{"key": "trading/source", "value": "ui-backfill"}],
    }
    out = dagster_dev.graphql(BACKFILL, {"p": params})["launchPartitionBackfill"]
    assert out["__typename"] == "LaunchBackfillSuccess", out
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = dagster_dev.graphql(BACKFILL_STATE, {"id": out["backfillId"]})["partitionBackfillOrError"]
        if state["status"] in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"):
            break
        time.sleep(1)
    assert state["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (state, dagster_dev.tail())
    runs = [run_state(dagster_dev, r["runId"]) for r in state["runs"]]
    assert len(runs) == 1
    assert {"price_history", "features", "positions", "cycle_summary"} <= {"/".join(a["path"]) for a in runs[0]["assetSelection"]}
    for r in runs:
        assert r["status"] == "SUCCESS"
        tags = {t["key"]: t["value"] for t in r["tags"]}
        assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == RANGE2  # the whole range in each run
    sessions = {d.isoformat() for d in calendar.sessions(date.fromisoformat(RANGE2[0]), date.fromisoformat(RANGE2[1]))}
    for a in selection:
        assert sessions <= _materialized(dagster_dev, a["path"][0]), a


@pytest.mark.browser
def test_lineage_checks_and_schedule_in_chromium(dagster_dev):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent: apt-get install chromium (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1800, "height": 1100})

            def goto(path: str) -> None:
                page.goto(f"{dagster_dev.url}{path}", wait_until="domcontentloaded")
                skip = page.get_by_role("button", name="Skip")  # a fresh instance asks to "Join the Dagster community"
                try:
                    skip.click(timeout=3000)
                except sync_api.TimeoutError:
                    pass

            groups = sorted({n["groupName"] for n in _nodes(dagster_dev)})
            goto("/asset-groups/?expanded=" + ",".join(f"global@global:{g}" for g in groups))  # every group open
            for stage in STAGES:
                page.get_by_text(stage, exact=True).first.wait_for(state="visible", timeout=60000)
            page.wait_for_timeout(1500)  # let the layout settle before the screenshot
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert SCREENSHOT.stat().st_size > 20_000

            goto("/assets/price_history?view=checks")
            for check in ("price_history_not_empty", "price_history_fresh"):
                page.get_by_text(check).first.wait_for(state="visible", timeout=60000)

            goto("/automation")
            page.get_by_text("daily_close", exact=True).first.wait_for(state="visible", timeout=60000)
        finally:
            browser.close()


# the evaluation assets whose last materialization carries PNG plots as markdown images (issue #11):
# asset -> (metadata entry, images in it); evaluation_plots is checked by the sensor test at the end.
PLOT_ASSETS = {"performance": ("plots", 2), "signal_quality": ("rolling_rank_ic_plot", 1),
               "evaluation_plots": ("nav_vs_benchmarks", 1)}


@pytest.mark.browser
def test_evaluation_plots_render_in_chromium(dagster_dev):
    """The performance (and signal_quality, when the build has it) materialization's plots render as
    images in the UI: Events > the latest materialization > [Show Markdown] on its plots entry."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent: apt-get install chromium (.ci/run does)")
    ensure_book_through(dagster_dev, RANGE[1])  # the trading_cycle job materializes the evaluation assets too
    present = {"/".join(n["assetKey"]["path"]) for n in _nodes(dagster_dev)}
    assets = [a for a in PLOT_ASSETS if a in present and a != "evaluation_plots"]  # drawn by the sensor test below
    assert "performance" in assets
    _assert_plots_render(dagster_dev, assets)


def _assert_plots_render(dagster_dev, assets: list[str]) -> None:
    """Each asset's latest materialization: [Show Markdown] on its plots entry shows real PNG images."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            for asset in assets:
                page.goto(f"{dagster_dev.url}/assets/{asset}?view=events", wait_until="domcontentloaded")
                entry, n_images = PLOT_ASSETS[asset]
                link = page.locator("tr", has_text=entry).get_by_text("[Show Markdown]").first
                link.wait_for(state="visible", timeout=60000)
                skip = page.get_by_role("button", name="Skip")  # "Join the Dagster community" may pop up late
                for _ in range(30):
                    if skip.count():
                        skip.first.click()
                    try:
                        link.click(timeout=2000)
                        break
                    except sync_api.TimeoutError:
                        continue
                images = page.locator("img[src^='data:image/png']")
                images.first.wait_for(state="visible", timeout=60000)
                page.wait_for_timeout(500)
                sizes = [images.nth(i).evaluate("e => [e.complete, e.naturalWidth, e.naturalHeight]")
                         for i in range(images.count())]
                assert len(sizes) >= n_images and all(ok and w > 300 and h > 100 for ok, w, h in sizes), (asset, sizes)
                shot = PROJECT_ROOT / "data" / f"{asset}.png"
                page.screenshot(path=str(shot))
                assert shot.stat().st_size > 20_000
                page.keyboard.press("Escape")  # close the dialog (a late community pop-up can cover its Close button)
        finally:
            browser.close()


RUNS_BY_TAG = """query($k: String!, $v: String!) { runsOrError(filter: {tags: [{key: $k, value: $v}]}) {
  ... on Runs { results { runId status tags { key value } } } } }"""


def _assert_drawn_after(dagster_dev, run_id: str, day: str) -> None:
    """Exactly one evaluation_plots run tagged for `run_id` appears (the daemon's sensor) and succeeds."""
    deadline, plots = time.monotonic() + 180, []
    while time.monotonic() < deadline:
        plots = dagster_dev.graphql(RUNS_BY_TAG, {"k": "trading/plots_for_run", "v": run_id})["runsOrError"]["results"]
        if plots and plots[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1.0)
    assert len(plots) == 1 and plots[0]["status"] == "SUCCESS", (plots, dagster_dev.tail())
    assert day in _materialized(dagster_dev, "evaluation_plots")


def test_the_daily_run_is_drawn_after_it_by_the_sensor(dagster_dev):
    """A single-session run of trading_cycle (what the daily schedule launches) does not draw; the daemon's
    draw_evaluation_plots sensor then launches ONE evaluation_plots run for that session, which succeeds."""
    from trading_assets_tests.ops.test_queue import launch, wait_done

    ensure_book_through(dagster_dev, RANGE[1])
    booked = _materialized(dagster_dev, "portfolio")
    day = calendar.next_session(date.fromisoformat(max(booked))).isoformat()
    run_id = launch(dagster_dev, "trading_cycle", day)
    states, _ = wait_done(dagster_dev, [run_id])
    assert states[run_id]["status"] == "SUCCESS", dagster_dev.tail()
    _assert_drawn_after(dagster_dev, run_id, day)
    # a `trading-cycle --date` run on the same instance (in process: no code-location origin) is seen too
    import json

    from trading_assets_tests.ops.conftest import SYMBOLS, run_cli

    nxt = calendar.next_session(date.fromisoformat(day)).isoformat()
    proc = run_cli(["--date", nxt, "--symbols", ",".join(SYMBOLS)], dagster_dev.env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cli_run = json.loads(proc.stdout)["run_id"]
    _assert_drawn_after(dagster_dev, cli_run, nxt)
    if os.path.exists(CHROMIUM):  # and its pictures render in the UI (the browser test's way)
        _assert_plots_render(dagster_dev, ["evaluation_plots"])


# A training schedule short enough for the ops history (a few weeks of 3 symbols): every session retrains, 5 label
# sessions suffice; the deep families stay out (their sequences need 28 sessions of history).
TRAINING_OVERRIDES = {"models": {"cadence": 1, "min_train_sessions": 5}, "agents": {"disabled": ["ranknet", "transformer"]}}
LATEST_METADATA = """query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { ... on AssetNode {
  assetMaterializations(limit: 1) { partition runId metadataEntries { label
    ... on JsonMetadataEntry { jsonString } ... on IntMetadataEntry { intValue } ... on TextMetadataEntry { text } } } } } }"""


def _latest_metadata(dev, asset: str) -> tuple[str, dict]:
    import json

    [m] = dev.graphql(LATEST_METADATA, {"k": {"path": [asset]}})["assetNodeOrError"]["assetMaterializations"]
    values = {}
    for e in m["metadataEntries"]:
        values[e["label"]] = json.loads(e["jsonString"]) if "jsonString" in e else e.get("intValue", e.get("text"))
    return m["partition"], values


def test_training_runs_versions_and_promotions_show_as_metadata(dagster_dev):
    """Issue #12: the UI shows training runs, model versions and promotions as metadata. model_training and
    agent_outputs launched from the webserver (Materialize selected, one session) -> the asset pages' latest
    materialization (what its Events tab renders, read through the same GraphQL): each trained model's version,
    window, MLflow run id; the version and role that served the session; the promotion decision; the aliases.
    Last in the file: it retrains the instance's models under a short schedule."""
    from trading_assets_tests.ops.conftest import SYMBOLS
    from trading_assets_tests.ops.test_queue import LAUNCH, location, wait_done

    ensure_book_through(dagster_dev, RANGE[1])
    day = max(_materialized(dagster_dev, "portfolio"))  # features and labels exist through it
    loc, repo = location(dagster_dev)
    params = {
        "selector": {"repositoryLocationName": loc, "repositoryName": repo, "jobName": "__ASSET_JOB",
                     "assetSelection": [{"path": ["model_training"]}, {"path": ["agent_outputs"]}]},
        "runConfigData": {"resources": {"pipeline": {"config": {"symbols": SYMBOLS, "settings_overrides": TRAINING_OVERRIDES}}}},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]},
    }  # fmt: skip
    out = dagster_dev.graphql(LAUNCH, {"p": params})["launchRun"]
    assert out["__typename"] == "LaunchRunSuccess", out
    run_id = out["run"]["runId"]
    states, _ = wait_done(dagster_dev, [run_id])
    assert states[run_id]["status"] == "SUCCESS", dagster_dev.tail()

    partition, training = _latest_metadata(dagster_dev, "model_training")
    assert partition == day and training["trained"] >= 3
    runs = training["last_training"]  # one entry per trained model: status, version, label window, rows, ICs, MLflow run
    for family in ("gbm_cross_section", "gbm_ranker", "trained_momentum"):
        r = runs[family]
        assert r["status"] == "TRAINED" and len(r["version"]) == 16 and r["mlflow_run_id"], r
        assert r["window"].endswith(calendar.lookback_start(date.fromisoformat(day), 2).isoformat())  # the purge
    partition, served = _latest_metadata(dagster_dev, "agent_outputs")
    assert partition == day
    versions = served["trained_models_last_session"]  # which version served the session, in which role
    assert versions["gbm_cross_section"] == {"role": "champion", "version": runs["gbm_cross_section"]["version"], "trained": day}
    decisions = {p["family"]: p for p in served["promotions"] if p["date"] == day}  # the session's promotion decisions
    assert set(decisions) == {"gbm_cross_section", "gbm_ranker", "trained_momentum"}
    # no paired out-of-sample history yet: each family's first variant stays champion ("initial" on a fresh instance)
    assert all(p["action"] in ("initial", "keep") and p["champion"] == f for f, p in decisions.items()), decisions
    assert set(served["mlflow_aliases"]["gbm_cross_section"]) >= {"champion"}  # the registry's alias moved with it

    if not os.path.exists(CHROMIUM):
        return
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:  # and the asset page lists those entries
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            for asset, labels in (("model_training", ["last_training", "training_sessions"]),
                                  ("agent_outputs", ["trained_models_last_session", "promotions", "mlflow_aliases"])):
                page.goto(f"{dagster_dev.url}/assets/{asset}?view=events", wait_until="domcontentloaded")
                for label in labels:
                    page.get_by_text(label, exact=True).first.wait_for(state="visible", timeout=60000)
        finally:
            browser.close()
