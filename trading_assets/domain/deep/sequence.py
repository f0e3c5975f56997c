"""The temporal autoencoder that produces z_t and the Transformer sequence model over z_t.

Temporal autoencoder (one symbol at a time, shared weights): the window X_t of the symbol's last W
sessions of session-normalized features (W x F, oldest first) is flattened and encoded,
    z_t = E(vec X_t) = A2 gelu(A1 vec X_t + a1) + a2                      (dimension k = latent_dim)
    vec X_t_hat = D(z_t) = B2 gelu(B1 z_t + b1) + b2
trained on the reconstruction error  L = sum over observed entries (X - X_hat)^2 / #observed
(missing inputs are 0 = the session median after normalization and are masked out of the loss).
With linear layers in place of gelu this is PCA of the windows; the non-linearity lets it fold the
curved part of the feature manifold into k numbers.

Transformer sequence model (after qlib's Transformer: d_model 64, 2 heads, 2 layers): the sequence
z_{t-L+1} .. z_t of one symbol is embedded, u_s = W_in z_s + p_s (learned positions p), passed
through a TransformerEncoder (pre-norm, GELU, dropout), and the last position's state h_t is read out,
    r_hat_t = w_out . h_t + b_out,
(the last layer computes only that position: `last_position`, the same function, ~40% less training work),
trained on the squared error to the session rank of the next tradable return mapped to [-1/2, 1/2]:
    r_t = (rank_t - 1) / (n_t - 1) - 1/2   (rank 1 = the session's lowest return; average ranks on ties)
so the output is a cross-sectional score (higher = better), on the same footing as RankNet's.

Both are trained full-batch-free: shuffled mini-batches of windows gathered on the fly
(`windows.gather`), Adam, a fixed number of epochs, under `runtime.deterministic`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trading_assets.domain.deep.runtime import as_tensor, deterministic, from_bytes, to_bytes
from trading_assets.domain.deep.windows import gather


@dataclass(frozen=True)
class AutoencoderParams:
    window: int = 10
    latent_dim: int = 8
    hidden: int = 64
    epochs: int = 10
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    seed: int = 7
    threads: int = 1


@dataclass(frozen=True)
class TransformerParams:
    seq_len: int = 20
    d_model: int = 64
    heads: int = 2
    layers: int = 2
    ff: int = 128
    dropout: float = 0.1
    epochs: int = 6
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 7
    threads: int = 1


class TemporalAutoencoder(nn.Module):
    """vec(W x F) -> z (k) -> vec(W x F); `encode` alone gives z_t."""

    def __init__(self, window: int, n_features: int, hidden: int, latent_dim: int) -> None:
        super().__init__()
        d = window * n_features
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.GELU(), nn.Linear(hidden, d))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x)).view_as(x)


class SequenceTransformer(nn.Module):
    """(batch, L, k) -> (batch,) cross-sectional score from the last position's encoding."""

    def __init__(self, latent_dim: int, p: TransformerParams) -> None:
        super().__init__()
        self.embed = nn.Linear(latent_dim, p.d_model)
        self.position = nn.Parameter(torch.zeros(p.seq_len, p.d_model))
        layer = nn.TransformerEncoderLayer(
            p.d_model, p.heads, dim_feedforward=p.ff, dropout=p.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, p.layers, enable_nested_tensor=False)
        self.head = nn.Linear(p.d_model, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = self.embed(z) + self.position[: z.shape[1]]
        layers = self.encoder.layers
        for layer in layers[:-1]:
            u = layer(u)
        return self.head(last_position(layers[-1], u)).squeeze(-1)


def last_position(layer: nn.TransformerEncoderLayer, x: torch.Tensor) -> torch.Tensor:
    """The pre-norm encoder layer's output at the LAST position only, (batch, L, d) -> (batch, d):

        y = LN1(x);  h = x_L + Attn(q = y_L; k, v = y_1..y_L);  out = h + FF(LN2(h))

    the same function as layer(x)[:, -1] (the head reads nothing else), without the queries, the
    output projection and the feed-forward of the L - 1 other positions: about 40% of a two-layer
    model's training work (speed only; tested equal to layer(x)[:, -1] in eval mode and in train mode
    without dropout). With dropout in training the masks are drawn for the last position only, so the
    random stream and the trained weights differ from the full layer's: a training change, named by the
    transformer family's version 2 (agents/transformer.py)."""
    y = layer.norm1(x)
    a = layer.self_attn(y[:, -1:], y, y, need_weights=False)[0][:, 0]
    h = x[:, -1] + layer.dropout1(a)
    return h + layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(h))))))


def session_rank_target(y: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    """r = (rank - 1) / (n - 1) - 1/2 within each session (average ranks on ties; n = 1 -> 0)."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=np.float64)
    out = np.zeros_like(y)
    codes = np.asarray(sessions)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    bounds = np.r_[0, np.flatnonzero(sorted_codes[1:] != sorted_codes[:-1]) + 1, codes.size]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        idx = order[lo:hi]
        n = idx.size
        out[idx] = 0.0 if n < 2 else (rankdata(y[idx]) - 1.0) / (n - 1.0) - 0.5
    return out


def _masked_mse(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((x_hat - x) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)


def train_epochs(model: nn.Module, ends: np.ndarray, batch_loss, epochs: int, batch_size: int, lr: float, weight_decay: float,
                 seed: int) -> list[float]:
    """Adam over shuffled mini-batches of `ends` (the permutation of epoch e drawn from numpy's Generator
    seeded by (seed, e)); batch_loss(model, batch_ends) -> scalar loss. Returns each epoch's mean loss."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(ends)
        total, count = 0.0, 0
        model.train()
        for b in range(0, order.size, batch_size):
            e = order[b : b + batch_size]
            loss = batch_loss(model, e)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * e.size
            count += e.size
        losses.append(total / count if count else float("nan"))
    return losses


def fit_autoencoder(values: np.ndarray, ends: np.ndarray, params: AutoencoderParams) -> tuple[bytes, dict]:
    """Train on the windows ending at `ends` (rows of `values` (n, F), see windows.py).

    Returns (artifact, stats) with the last epoch's reconstruction MSE over observed entries.
    """
    values = np.asarray(values, dtype=np.float32)
    n_features = values.shape[1]
    observed = np.isfinite(values).astype(np.float32)
    with deterministic(params.seed, params.threads):
        model = TemporalAutoencoder(params.window, n_features, params.hidden, params.latent_dim)

        def batch_loss(m: nn.Module, e: np.ndarray) -> torch.Tensor:
            x = as_tensor(gather(values, e, params.window))
            return _masked_mse(m(x), x, torch.from_numpy(np.ascontiguousarray(gather(observed, e, params.window))))

        losses = train_epochs(model, np.asarray(ends), batch_loss, params.epochs, params.batch_size, params.lr, params.weight_decay, params.seed)
        state = {
            "kind": "temporal_autoencoder",
            "window": params.window,
            "n_features": n_features,
            "hidden": params.hidden,
            "latent_dim": params.latent_dim,
            "weights": model.state_dict(),
        }
    return to_bytes(state), {"epoch_losses": losses, "windows": int(np.asarray(ends).size)}


def _load_autoencoder(state: dict) -> TemporalAutoencoder:
    if state.get("kind") != "temporal_autoencoder":
        raise ValueError(f"artifact is a {state.get('kind')!r} model, not a temporal_autoencoder")
    model = TemporalAutoencoder(state["window"], state["n_features"], state["hidden"], state["latent_dim"])
    model.load_state_dict(state["weights"])
    model.eval()
    return model


def encode(artifact: bytes | dict, values: np.ndarray, ends: np.ndarray, batch_size: int = 4096, threads: int = 1) -> np.ndarray:
    """z_t for the windows ending at `ends`: array (len(ends), k)."""
    state = from_bytes(artifact) if isinstance(artifact, bytes) else artifact
    model = _load_autoencoder(state)
    w = state["window"]
    values = np.asarray(values, dtype=np.float32)
    out = []
    with deterministic(0, threads), torch.no_grad():
        for b in range(0, len(ends), batch_size):
            out.append(model.encode(as_tensor(gather(values, np.asarray(ends)[b : b + batch_size], w))).numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, state["latent_dim"]))


def reconstruct(artifact: bytes, values: np.ndarray, ends: np.ndarray, threads: int = 1) -> np.ndarray:
    """X_hat for the windows ending at `ends`: (len(ends), W, F) (for tests and diagnostics)."""
    state = from_bytes(artifact)
    model = _load_autoencoder(state)
    with deterministic(0, threads), torch.no_grad():
        return model(as_tensor(gather(np.asarray(values, dtype=np.float32), ends, state["window"]))).numpy()


def fit_transformer(z: np.ndarray, ends: np.ndarray, target: np.ndarray, params: TransformerParams) -> tuple[bytes, dict]:
    """Train on the z sequences of length L ending at `ends` (rows of z (n, k)) against target[ends]."""
    z = np.asarray(z, dtype=np.float32)
    target = np.asarray(target, dtype=np.float32)
    with deterministic(params.seed, params.threads):
        model = SequenceTransformer(z.shape[1], params)

        def batch_loss(m: nn.Module, e: np.ndarray) -> torch.Tensor:
            return nn.functional.mse_loss(m(as_tensor(gather(z, e, params.seq_len))), torch.from_numpy(target[e]))

        losses = train_epochs(model, np.asarray(ends), batch_loss, params.epochs, params.batch_size, params.lr, params.weight_decay, params.seed)
        state = {
            "kind": "sequence_transformer",
            "latent_dim": int(z.shape[1]),
            "params": {k: getattr(params, k) for k in ("seq_len", "d_model", "heads", "layers", "ff", "dropout")},
            "weights": model.state_dict(),
        }
    return to_bytes(state), {"epoch_losses": losses, "sequences": int(np.asarray(ends).size)}


def predict_transformer(artifact: bytes | dict, z: np.ndarray, ends: np.ndarray, batch_size: int = 4096, threads: int = 1) -> np.ndarray:
    """Scores of the z sequences ending at `ends` (eval mode: no dropout)."""
    state = from_bytes(artifact) if isinstance(artifact, bytes) else artifact
    if state.get("kind") != "sequence_transformer":
        raise ValueError(f"artifact is a {state.get('kind')!r} model, not a sequence_transformer")
    p = TransformerParams(**state["params"])
    z = np.asarray(z, dtype=np.float32)
    out = []
    with deterministic(0, threads), torch.no_grad():
        model = SequenceTransformer(state["latent_dim"], p)
        model.load_state_dict(state["weights"])
        model.eval()
        for b in range(0, len(ends), batch_size):
            out.append(model(as_tensor(gather(z, np.asarray(ends)[b : b + batch_size], p.seq_len))).numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)
