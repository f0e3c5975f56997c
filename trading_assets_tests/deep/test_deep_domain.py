"""The deep models' math: RankNet loss by hand, low-rank reconstruction, a Transformer that can
overfit, determinism, windows. Skipped (with the reason) when the [deep] extra is not installed."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='PyTorch absent: pip install -e ".[deep]"')

from trading_assets.domain.deep.ranknet import (  # noqa: E402
    RankNetParams,
    fit_ranknet,
    pair_targets,
    predict_ranknet,
    ranknet_loss,
    sample_pairs,
)
from trading_assets.domain.deep.sequence import (  # noqa: E402
    AutoencoderParams,
    TransformerParams,
    encode,
    fit_autoencoder,
    fit_transformer,
    predict_transformer,
    reconstruct,
    session_rank_target,
)
from trading_assets.domain.deep.windows import gather, window_ends  # noqa: E402


def test_ranknet_loss_matches_a_hand_computation_on_three_items():
    s = np.array([1.0, 0.5, -0.2])
    y = np.array([3.0, 1.0, 2.0])
    pairs = [(0, 1), (0, 2), (1, 2)]
    # C = log(1 + e^o) - Pbar * o with o = s_i - s_j
    by_hand = [
        math.log(1 + math.exp(0.5)) - 1.0 * 0.5,  # y0 > y1: Pbar 1, o 0.5
        math.log(1 + math.exp(1.2)) - 1.0 * 1.2,  # y0 > y2: Pbar 1, o 1.2
        math.log(1 + math.exp(0.7)) - 0.0 * 0.7,  # y1 < y2: Pbar 0, o 0.7
    ]
    i = np.array([p[0] for p in pairs])
    j = np.array([p[1] for p in pairs])
    target = torch.tensor(pair_targets(y[i], y[j]), dtype=torch.float64)
    loss = ranknet_loss(torch.tensor(s[i]), torch.tensor(s[j]), target)
    assert float(loss) == pytest.approx(sum(by_hand) / 3, abs=1e-12)
    # ties give Pbar = 1/2: C = log(1 + e^o) - o/2, symmetric in o
    tie = ranknet_loss(torch.tensor([0.3]), torch.tensor([-0.1]), torch.tensor([0.5], dtype=torch.float64))
    assert float(tie) == pytest.approx(math.log(1 + math.exp(0.4)) - 0.2, abs=1e-7)


def test_pairs_stay_within_their_session_and_never_pair_a_row_with_itself():
    starts = np.array([0, 5, 6])
    sizes = np.array([5, 1, 4])  # the 1-row session yields no pair
    i, j = sample_pairs(starts, sizes, 100, np.random.default_rng(0))
    assert i.size == 10 + 6  # min(100, n(n-1)/2) per session
    assert np.all(i != j)
    session = np.repeat([0, 1, 2], sizes)
    assert np.all(session[i] == session[j])
    assert not np.any(session[i] == 1)


def _ranking_panel(n_sessions=60, n_symbols=40, n_features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_sessions * n_symbols, n_features)).astype(np.float32)
    y = x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.standard_normal(x.shape[0])  # a learnable order
    sessions = np.repeat(np.arange(n_sessions), n_symbols)
    return x, y, sessions


def test_ranknet_learns_a_cross_sectional_order_and_is_deterministic():
    from scipy.stats import spearmanr

    x, y, sessions = _ranking_panel()
    params = RankNetParams(hidden=(16,), epochs=10, pairs_per_session=200, sessions_per_batch=4, lr=3e-3, seed=3)
    blob, stats = fit_ranknet(x, y, sessions, params)
    assert stats["epoch_losses"][-1] < stats["epoch_losses"][0]
    xt, yt, st = _ranking_panel(seed=1)  # unseen sessions
    scores = predict_ranknet(blob, xt)
    ics = [spearmanr(scores[st == s], yt[st == s])[0] for s in range(10)]
    assert np.mean(ics) > 0.6
    blob2, _ = fit_ranknet(x, y, sessions, params)
    assert blob2 == blob  # identical bytes from two clean fits
    assert np.array_equal(predict_ranknet(blob2, xt), scores)
    with pytest.raises(ValueError, match="trained on 6 features"):
        predict_ranknet(blob, xt[:, :3])
    with pytest.raises(ValueError, match="not a readable deep-model artifact"):
        predict_ranknet(b"corrupt", xt)


def test_window_ends_and_gather_respect_symbol_boundaries():
    codes = np.array([0, 0, 0, 1, 1, 1, 1])
    values = np.arange(14, dtype=np.float64).reshape(7, 2)
    ends = window_ends(codes, 3)
    assert ends.tolist() == [2, 5, 6]
    w = gather(values, ends, 3)
    assert w.shape == (3, 3, 2)
    assert w[1].tolist() == [[6, 7], [8, 9], [10, 11]]  # rows 3..5 of symbol 1, oldest first
    with pytest.raises(ValueError, match="sorted by symbol"):
        window_ends(np.array([1, 0]), 1)


def test_autoencoder_reconstructs_a_low_rank_panel():
    # windows of 4 sessions x 5 features driven by 3 latent factors: a rank-3 panel in 20 dimensions
    rng = np.random.default_rng(0)
    n_symbols, n_sessions, window, n_features, rank = 30, 80, 4, 5, 3
    factors = rng.standard_normal((n_symbols, n_sessions + window, rank))
    loadings = rng.standard_normal((rank, n_features))
    values = (factors[:, :n_sessions] @ loadings).reshape(-1, n_features)  # one factor vector per (symbol, session)
    codes = np.repeat(np.arange(n_symbols), n_sessions)
    ends = window_ends(codes, window)
    params = AutoencoderParams(window=window, latent_dim=12, hidden=64, epochs=60, batch_size=128, lr=3e-3, seed=1)
    blob, stats = fit_autoencoder(values, ends, params)
    x = gather(values, ends, window)
    x_hat = reconstruct(blob, values, ends)
    r2 = 1 - ((x_hat - x) ** 2).sum() / ((x - x.mean()) ** 2).sum()
    # the windows span 4 x 3 = 12 latent dimensions; with k = 12 the relative error is small (stated: R^2 > 0.95)
    assert r2 > 0.95, r2
    z = encode(blob, values, ends)
    assert z.shape == (ends.size, 12)
    assert np.array_equal(encode(blob, values, ends), z)
    # missing entries are masked out of the loss and fed as 0
    holes = values.copy()
    holes[::7, 1] = np.nan
    blob_holes, s2 = fit_autoencoder(holes, ends, AutoencoderParams(window=window, latent_dim=12, epochs=3, seed=1))
    assert np.isfinite(s2["epoch_losses"]).all()


def test_session_rank_target_by_hand():
    y = np.array([0.02, -0.01, 0.03, 0.0, 0.0])
    sessions = np.array([0, 0, 0, 1, 1])
    assert session_rank_target(y, sessions).tolist() == [0.0, -0.5, 0.5, 0.0, 0.0]


def test_transformer_overfits_a_tiny_sequence_task_and_is_deterministic():
    # the target is the sign of the first latent 5 steps back: needs the sequence, not the last step
    rng = np.random.default_rng(2)
    n_symbols, n_sessions, k, L = 8, 40, 3, 10
    z = rng.standard_normal((n_symbols * n_sessions, k)).astype(np.float32)
    codes = np.repeat(np.arange(n_symbols), n_sessions)
    ends = window_ends(codes, L)
    target = np.zeros(z.shape[0], dtype=np.float32)
    target[ends] = np.where(z[ends - 5, 0] > 0, 0.5, -0.5)
    p = TransformerParams(seq_len=L, d_model=32, heads=2, layers=2, ff=64, dropout=0.0, epochs=150, batch_size=64, lr=3e-3, seed=5)
    blob, stats = fit_transformer(z, ends, target, p)
    pred = predict_transformer(blob, z, ends)
    mse = float(np.mean((pred - target[ends]) ** 2))
    assert mse < 0.02, (mse, stats["epoch_losses"][-5:])  # vs 0.25 for predicting 0
    assert np.mean(np.sign(pred) == np.sign(target[ends])) > 0.97
    blob2, _ = fit_transformer(z, ends, target, p)
    assert blob2 == blob


def test_the_last_position_forward_is_the_encoders_last_position():
    """SequenceTransformer computes only the last position in its last layer (what the head reads): the same
    function as the full nn.TransformerEncoder's output at the last position, in scoring and in training."""
    from trading_assets.domain.deep.sequence import SequenceTransformer

    p = TransformerParams(seq_len=12, d_model=32, heads=2, layers=2, ff=64, dropout=0.0)
    torch.manual_seed(3)
    model = SequenceTransformer(5, p)
    z = torch.randn(64, 12, 5)
    # eval: the fused fast path in the first layers; train: the plain one, without dropout (with dropout the last
    # layer draws masks for one position: another random stream, other weights; the family's version says so)
    for train in (False, True):
        model.train(train)
        with torch.set_grad_enabled(train):
            full = model.head(model.encoder(model.embed(z) + model.position)[:, -1]).squeeze(-1)
            np.testing.assert_allclose(model(z).detach().numpy(), full.detach().numpy(), rtol=1e-5, atol=1e-6)
