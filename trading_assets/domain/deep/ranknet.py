"""RankNet (Burges et al. 2005, "Learning to Rank using Gradient Descent", ICML): a small MLP scorer
f(x) over session-normalized features, trained on pairs of symbols of the SAME session.

For a pair (i, j) of one session with scores s_i = f(x_i), s_j = f(x_j), the model's probability that
i should rank above j is P_ij = sigmoid(o_ij), o_ij = s_i - s_j. The target is
    Pbar_ij = 1 if y_i > y_j,  0 if y_i < y_j,  1/2 if y_i = y_j
(y = the label, e.g. the next tradable return), and the loss is the cross entropy
    C_ij = -Pbar_ij * log(P_ij) - (1 - Pbar_ij) * log(1 - P_ij) = log(1 + exp(o_ij)) - Pbar_ij * o_ij,
averaged over the sampled pairs. Only score differences within a session enter, so the model learns
the cross-sectional order and is blind to the session's common level (what a long-only ranker needs).

Pair sampling (stated rule): every epoch, for each training session with n >= 2 rows, draw
m = min(pairs_per_session, n (n - 1) / 2) ordered pairs (i, j) with i, j uniform over the session's
rows and j != i (j redrawn as (j + 1) mod n when it hits i), from a numpy Generator seeded by
(seed, epoch): deterministic, unbiased over pairs, and O(m) instead of O(n^2) per session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trading_assets.domain.deep.runtime import as_tensor, deterministic, from_bytes, to_bytes


@dataclass(frozen=True)
class RankNetParams:
    hidden: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    epochs: int = 8
    pairs_per_session: int = 2_000
    sessions_per_batch: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 7
    threads: int = 1


class Scorer(nn.Module):
    """x (batch, F) -> score (batch,): Linear-ReLU-Dropout blocks, then a linear head."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def ranknet_loss(s_i: torch.Tensor, s_j: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of C_ij = log(1 + exp(o)) - Pbar * o, o = s_i - s_j (numerically stable softplus)."""
    o = s_i - s_j
    return (nn.functional.softplus(o) - target * o).mean()


def pair_targets(y_i: np.ndarray, y_j: np.ndarray) -> np.ndarray:
    """Pbar_ij: 1 when y_i > y_j, 0 when y_i < y_j, 1/2 on ties."""
    return np.where(y_i > y_j, 1.0, np.where(y_i < y_j, 0.0, 0.5))


def sample_pairs(group_starts: np.ndarray, group_sizes: np.ndarray, pairs_per_session: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (i, j) of the pairs of every session, by the rule in the module docstring."""
    ii, jj = [], []
    for start, n in zip(group_starts.tolist(), group_sizes.tolist()):
        if n < 2:
            continue
        m = int(min(pairs_per_session, n * (n - 1) // 2))
        i = rng.integers(0, n, size=m)
        j = rng.integers(0, n, size=m)
        j = np.where(j == i, (j + 1) % n, j)
        ii.append(i + start)
        jj.append(j + start)
    if not ii:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(ii), np.concatenate(jj)


def _groups(session_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(session_codes)
    if codes.size and np.any(codes[1:] < codes[:-1]):
        raise ValueError("rows must be sorted by session")
    starts = np.r_[0, np.flatnonzero(codes[1:] != codes[:-1]) + 1] if codes.size else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, codes.size])
    return starts.astype(np.int64), sizes.astype(np.int64)


def fit_ranknet(x: np.ndarray, y: np.ndarray, sessions: np.ndarray, params: RankNetParams) -> tuple[bytes, dict]:
    """Train the scorer on rows sorted by session; returns (artifact bytes, training stats).

    x: (n, F) session-normalized features (NaN = missing -> 0, the session median after rank-gauss);
    y: (n,) labels; sessions: (n,) non-decreasing session codes. Adam on the mean pairwise loss over
    batches of `sessions_per_batch` sessions; pairs redrawn every epoch.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be (n, F) and y (n,): got {x.shape} and {y.shape}")
    starts, sizes = _groups(sessions)
    with deterministic(params.seed, params.threads):
        model = Scorer(x.shape[1], params.hidden, params.dropout)
        opt = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
        xt = as_tensor(x)
        losses = []
        for epoch in range(params.epochs):
            rng = np.random.default_rng([params.seed, epoch])
            order = rng.permutation(starts.size)
            model.train()
            total, count = 0.0, 0
            for b in range(0, order.size, params.sessions_per_batch):
                pick = np.sort(order[b : b + params.sessions_per_batch])
                i, j = sample_pairs(starts[pick], sizes[pick], params.pairs_per_session, rng)
                if i.size == 0:
                    continue
                target = torch.from_numpy(pair_targets(y[i], y[j]).astype(np.float32))
                rows = np.unique(np.r_[i, j])  # score each row of the batch once
                scores = model(xt[torch.from_numpy(rows)])
                pi = torch.from_numpy(np.searchsorted(rows, i))
                pj = torch.from_numpy(np.searchsorted(rows, j))
                loss = ranknet_loss(scores[pi], scores[pj], target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * i.size
                count += i.size
            losses.append(total / count if count else float("nan"))
        state = {
            "kind": "ranknet",
            "n_features": int(x.shape[1]),
            "hidden": list(params.hidden),
            "dropout": float(params.dropout),
            "weights": model.state_dict(),
        }
    return to_bytes(state), {"epoch_losses": losses, "sessions": int(starts.size), "rows": int(x.shape[0])}


def predict_ranknet(artifact: bytes, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """Scores of the rows of x (n, F) under the trained scorer (eval mode: no dropout)."""
    state = from_bytes(artifact)
    if state.get("kind") != "ranknet":
        raise ValueError(f"artifact is a {state.get('kind')!r} model, not a ranknet")
    if x.shape[1] != state["n_features"]:
        raise ValueError(f"ranknet was trained on {state['n_features']} features, got {x.shape[1]}")
    with deterministic(0, threads):
        model = Scorer(state["n_features"], tuple(state["hidden"]), state["dropout"])
        model.load_state_dict(state["weights"])
        model.eval()
        with torch.no_grad():
            return model(as_tensor(x)).numpy().astype(np.float64)
