"""Each Meta-Brain formula on a small cross-section computed by hand."""

from __future__ import annotations

import math
import statistics
from datetime import date

import polars as pl
import pytest

from trading_assets.domain import meta_brain as mb
from trading_assets.domain import reasons as rc
from trading_assets.settings import MetaBrainSettings

D1, D2 = date(2024, 3, 1), date(2024, 3, 4)
M = MetaBrainSettings()  # beta 4e6, z_clip 3, gamma 0.25, min_trade 0.002, min_confidence 0.05


def outputs(rows, day=D1) -> pl.DataFrame:
    """rows: (symbol, agent, mu, sigma, confidence[, state])."""
    return pl.DataFrame(
        [
            {"date": day, "symbol": r[0], "agent": r[1], "mu": r[2], "sigma": r[3], "confidence": r[4], "state": r[5] if len(r) > 5 else None}
            for r in rows
        ],
        schema={"date": pl.Date, "symbol": pl.String, "agent": pl.String, "mu": pl.Float64, "sigma": pl.Float64, "confidence": pl.Float64, "state": pl.String},
    )


def quality(passed: dict[str, bool], day=D1) -> pl.DataFrame:
    return pl.DataFrame({"date": [day] * len(passed), "symbol": list(passed), "passed": list(passed.values())})


CROSS = outputs(
    [
        ("A", "m1", 6e-4, 0.02, 1.0), ("A", "regime", -2e-4, 0.02, 1.0, "risk_on"),  # two agents, disagree
        ("B", "m1", 3e-4, 0.01, 0.5), ("B", "regime", None, 0.01, 0.0, "risk_on"),  # one agent speaks
        ("C", "m1", -4e-4, 0.02, 0.8), ("C", "m2", -1e-4, 0.03, 0.2),  # unequal confidence
        ("D", "m1", 1e-6, 0.02, 1.0),  # tiny edge
        ("E", "m1", 5e-4, 0.02, 0.01), ("E", "m2", None, None, 0.0),  # all silent
        ("F", "m1", 9e-4, 0.02, 1.0),  # data quality failed
        ("SPY", "m1", 1e-3, 0.01, 1.0), ("SPY", "regime", 1e-4, 0.01, 1.0, "risk_on"),  # benchmark
    ]
)  # fmt: skip
QUAL = quality({"A": True, "B": True, "C": True, "D": True, "E": True, "F": False, "G": True, "SPY": True})


@pytest.fixture(scope="module")
def decided() -> dict[str, dict]:
    out = mb.decide(CROSS, QUAL, M, exclude_symbols=["SPY"])
    return {r["symbol"]: r for r in out.iter_rows(named=True)}


# hand computation of the adjusted edges of the four scored symbols
A_ADJ = 2e-4 * math.exp(-4e6 * 1.6e-7)  # mu_hat 2e-4, D = (4e-4)^2 = 1.6e-7
B_ADJ = 3e-4
C_MU = 0.8 * -4e-4 + 0.2 * -1e-4  # -3.4e-4
C_D = 0.8 * (-4e-4 - C_MU) ** 2 + 0.2 * (-1e-4 - C_MU) ** 2  # 1.44e-8
C_ADJ = C_MU * math.exp(-4e6 * C_D)
D_ADJ = 1e-6


def test_ensemble_weights_disagreement_and_mixture_sigma(decided):
    a, c = decided["A"], decided["C"]
    assert a["mu_hat"] == pytest.approx(2e-4, rel=1e-12)
    assert a["disagreement"] == pytest.approx(1.6e-7, rel=1e-9)
    assert a["sigma_hat"] == pytest.approx(math.sqrt(4e-4 + 1.6e-7), rel=1e-12)
    assert a["mu_hat_adj"] == pytest.approx(A_ADJ, rel=1e-12)
    assert c["mu_hat"] == pytest.approx(-3.4e-4, rel=1e-12)
    assert c["disagreement"] == pytest.approx(1.44e-8, rel=1e-9)
    assert c["sigma_hat"] == pytest.approx(math.sqrt(0.8 * 4e-4 + 0.2 * 9e-4 + 1.44e-8), rel=1e-12)
    assert c["mu_hat_adj"] == pytest.approx(C_ADJ, rel=1e-12)
    assert (a["n_agents"], c["n_agents"]) == (2, 2)


def test_one_agent_only_passes_through_unchanged(decided):
    b = decided["B"]
    assert (b["n_agents"], b["mu_hat"], b["sigma_hat"], b["disagreement"]) == (1, 3e-4, 0.01, 0.0)
    assert b["mu_hat_adj"] == 3e-4
    assert b["kelly_fraction"] == pytest.approx(0.25 * 3e-4 / 1e-4, rel=1e-12)  # 0.75


def test_robust_z_against_a_hand_computed_median_and_mad(decided):
    xs = [A_ADJ, B_ADJ, C_ADJ, D_ADJ]
    med = statistics.median(xs)
    mad = statistics.median([abs(x - med) for x in xs])
    for sym, x in zip("ABCD", xs):
        assert decided[sym]["z_score"] == pytest.approx((x - med) / (1.4826 * mad), rel=1e-9)


def test_kelly_target_and_decisions(decided):
    a, b, c, d = (decided[s] for s in "ABCD")
    assert a["kelly_fraction"] == pytest.approx(0.25 * A_ADJ / (4e-4 + 1.6e-7), rel=1e-12)
    assert a["pre_risk_decision"] == rc.EXECUTE_BUY and a["reason_codes"] == [rc.POSITIVE_EDGE]
    assert b["pre_risk_decision"] == rc.EXECUTE_BUY
    # C: negative edge -> Kelly -0.16, long-only target 0, SELL (the book should not hold it)
    assert c["kelly_fraction"] == pytest.approx(0.25 * C_ADJ / (5e-4 + 1.44e-8), rel=1e-12)
    assert c["target_weight_raw"] == 0.0
    assert c["pre_risk_decision"] == rc.EXECUTE_SELL and c["reason_codes"] == [rc.NEGATIVE_EDGE]
    # D: Kelly 0.25 * 1e-6 / 4e-4 = 6.25e-4 < 0.002
    assert d["target_weight_raw"] == pytest.approx(6.25e-4, rel=1e-12)
    assert d["pre_risk_decision"] == rc.HOLD and d["reason_codes"] == [rc.BELOW_TRADE_THRESHOLD]


def test_rejects_carry_their_reasons_and_null_values(decided):
    assert decided["E"]["pre_risk_decision"] == rc.REJECT and decided["E"]["reason_codes"] == [rc.NO_SIGNAL]
    assert decided["F"]["reason_codes"] == [rc.DATA_QUALITY]  # F's agents spoke, but its data failed
    assert decided["G"]["reason_codes"] == [rc.NO_FEATURES]
    for s in "EFG":
        assert decided[s]["pre_risk_decision"] == rc.REJECT
        assert all(decided[s][c] is None for c in mb.VALUE_COLUMNS)


def test_benchmark_is_excluded_and_regime_is_the_sessions(decided):
    assert "SPY" not in decided
    assert set(decided) == set("ABCDEFG")
    assert {r["regime"] for r in decided.values()} == {"risk_on"}


def test_missing_quality_row_is_a_data_quality_reject():
    out = mb.decide(outputs([("H", "m1", 5e-4, 0.02, 1.0)]), quality({"A": True}), M)
    h = out.filter(pl.col("symbol") == "H").row(0, named=True)
    assert h["pre_risk_decision"] == rc.REJECT and h["reason_codes"] == [rc.DATA_QUALITY]


def test_mad_zero_falls_back_to_mean_absolute_deviation_and_clips():
    xs = [0.0, 0.0, 0.0, 1e-4, 1e-3]  # more than half equal: MAD = 0
    rows = [(s, "m1", x, 0.02, 1.0) for s, x in zip("PQRST", xs)]
    out = mb.decide(outputs(rows), quality({s: True for s in "PQRST"}), M)
    mean_ad = sum(abs(x) for x in xs) / 5  # median 0
    z = dict(zip(out["symbol"], out["z_score"]))
    assert z["S"] == pytest.approx(1e-4 / (1.2533 * mean_ad), rel=1e-12)  # 0.363
    assert z["T"] == 3.0  # raw 1e-3 / (1.2533 * 2.2e-4) = 3.63 -> clipped
    codes = dict(zip(out["symbol"], out["reason_codes"]))
    assert rc.Z_CLIPPED in codes["T"] and rc.Z_CLIPPED not in codes["S"]
    assert z["P"] == 0.0


def test_identical_edges_give_z_zero_and_no_clip_when_disabled():
    same = outputs([(s, "m1", 2e-4, 0.02, 1.0) for s in "XYZ"])
    out = mb.decide(same, quality({s: True for s in "XYZ"}), M)
    assert out["z_score"].to_list() == [0.0, 0.0, 0.0]
    xs = [0.0, 0.0, 0.0, 1e-4, 1e-3]
    rows = outputs([(s, "m1", x, 0.02, 1.0) for s, x in zip("PQRST", xs)])
    unclipped = mb.decide(rows, quality({s: True for s in "PQRST"}), MetaBrainSettings(z_clip=0.0))
    assert unclipped["z_score"].max() == pytest.approx(1e-3 / (1.2533 * 2.2e-4), rel=1e-12)


def test_high_disagreement_is_flagged_below_the_penalty_threshold():
    rows = outputs([("X", "m1", 6e-4, 0.02, 1.0), ("X", "m2", -4e-4, 0.02, 1.0), ("Y", "m1", 1e-4, 0.02, 1.0)])
    out = mb.decide(rows, quality({"X": True, "Y": True}), M)
    x = out.row(0, named=True)
    assert x["disagreement"] == pytest.approx(2.5e-7, rel=1e-9)  # penalty exp(-1) = 0.37 < 0.5
    assert x["mu_hat_adj"] == pytest.approx(1e-4 * math.exp(-1.0), rel=1e-9)
    assert rc.HIGH_DISAGREEMENT in x["reason_codes"]
    assert mb.high_disagreement_rows(out)["symbol"].to_list() == ["X"]


def test_all_agents_silent_everywhere_is_a_no_signal_session():
    rows = outputs([(s, "m1", None, 0.02, 0.0) for s in "XY"])
    out = mb.decide(rows, quality({"X": True, "Y": True}), M)
    assert out["pre_risk_decision"].to_list() == [rc.REJECT, rc.REJECT]
    assert out["reason_codes"].to_list() == [[rc.NO_SIGNAL], [rc.NO_SIGNAL]]
    assert mb.nonfinite_rows(out).height == 0


def test_sessions_are_independent_and_reruns_identical():
    day2 = outputs([("A", "m1", -3e-4, 0.02, 1.0), ("B", "m1", 4e-4, 0.02, 0.6), ("C", "m1", 1e-4, 0.02, 0.9)], D2)
    q2 = quality({"A": True, "B": True, "C": False}, D2)
    both = mb.decide(pl.concat([CROSS, day2]), pl.concat([QUAL, q2]), M, ["SPY"])
    alone = pl.concat([mb.decide(CROSS, QUAL, M, ["SPY"]), mb.decide(day2, q2, M, ["SPY"])])
    assert both.equals(alone)
    assert mb.decide(CROSS.reverse(), QUAL.reverse(), M, ["SPY"]).equals(mb.decide(CROSS, QUAL, M, ["SPY"]))


def test_summaries_counts_top_buys_and_nonfinite_detection(decided):
    out = mb.decide(CROSS, QUAL, M, ["SPY"])
    assert mb.decision_counts(out) == {rc.EXECUTE_BUY: 2, rc.EXECUTE_SELL: 1, rc.HOLD: 1, rc.REJECT: 3}
    top = mb.top_decisions(out, rc.EXECUTE_BUY, 5)
    assert [t["symbol"] for t in top] == ["B", "A"]  # B has the larger z
    assert top[0] == {"symbol": "B", "mu_hat": 3e-4, "sigma_hat": 0.01, "conviction": decided["B"]["z_score"]}
    assert [t["symbol"] for t in mb.top_decisions(out, rc.EXECUTE_SELL)] == ["C"]
    broken = out.with_columns(sigma_hat=pl.when(pl.col("symbol") == "A").then(float("inf")).otherwise(pl.col("sigma_hat")))
    assert mb.nonfinite_rows(broken)["symbol"].to_list() == ["A"]
    assert mb.nonfinite_rows(out).height == 0


def test_duplicate_quality_rows_and_conflicting_regimes_are_errors():
    with pytest.raises(ValueError, match="duplicate"):
        mb.decide(CROSS, pl.concat([QUAL, QUAL]), M)
    two = outputs([("A", "regime", 1e-4, 0.02, 1.0, "risk_on"), ("B", "regime", 1e-4, 0.02, 1.0, "risk_off")])
    with pytest.raises(ValueError, match="several states"):
        mb.decide(two, quality({"A": True, "B": True}), M)
