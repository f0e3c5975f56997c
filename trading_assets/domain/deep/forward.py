"""The deep families' forward passes in numpy (scoring only; training stays in PyTorch): RankNet's MLP
scorer, the temporal autoencoder's encoder and the sequence Transformer, read from the trained weights
(domain/deep/torch_state.py) without importing torch (~2 s of a 5-s daily cycle, issue #16 item 5).

The same functions as the torch modules of ranknet.py / sequence.py in eval mode (dropout off):
- Linear: y = x W^T + b;  ReLU: max(x, 0);  GELU (exact, torch's default): g(x) = x/2 (1 + erf(x / sqrt 2)).
- RankNet: s(x) = Linear_out(ReLU(Linear_k(... ReLU(Linear_1(x))))).
- Encoder: z = A2 g(A1 vec(X) + a1) + a2  (X the W x F window, oldest row first, flattened row-major).
- Transformer (pre-norm encoder layers, batch first): u_s = W_in z_s + b_in + p_s; per layer
      h = u + MHA(LN1(u)),   u' = h + W_2 g(W_1 LN2(h) + b_1) + b_2,
  LN(v) = (v - mean v) / sqrt(var v + 1e-5) * gamma + beta (biased variance over the model dimension);
  MHA(v) = concat_heads softmax(q_h k_h^T / sqrt(d_h)) v_h, then the out projection, where
  [q; k; v] = v W_in_proj^T + b_in_proj split in three and each into `heads` slices of d_h = d / heads;
  score = w_out . u_L (the last position after the last layer) + b_out.
  Only the last position reaches the score, so the last layer computes queries, attention and the
  feed-forward block for that position alone (keys and values for every position): the same numbers.

Arithmetic: float64 (the float32 weights and inputs are exact in it; torch computes in float32, so the two
agree to ~1e-7, the stated tolerance of the tests: |numpy - torch| <= 1e-5 x (1 + |torch|)).
Inputs as runtime.as_tensor: float32, NaN/inf -> 0 (the session median after rank-gauss).
Run-boundary independence: a row's score must not depend on which other rows are scored with it (a
session alone vs inside a range). BLAS matrix products are not (OpenBLAS picks kernels by the matrix's
row count: the last bits of a row change with it), so every product over rows goes through `_rows_matmul`:
fixed blocks of BLOCK (2,048) rows, the last one zero-padded -> every row meets the same kernel on the same
shapes (tested: a row alone, or at any place in a larger batch, gives the same bits). Products inside one
sequence (attention) have the same shapes for every sequence. BLAS runs on `threads` threads (1 by default,
ModelSettings.num_threads): a fixed count, like training; and OpenBLAS's two threads on this shared 2-core
box ran its small products 4-10x slower than one under load (measured: 13 vs 60 GFLOPS in float64).
Cost (load ~4, 250 symbols x 1 year, scored at once as a range run does): the Transformer 6.3 s (torch 4.3 s),
RankNet.wide 0.25 s (0.05 s); a daily session's transformer family ~50 ms, RankNet ~3 ms, and no torch import.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

from trading_assets.domain.deep.windows import gather

BLOCK = 2048  # rows per matrix product (fixed: see the module docstring)
LN_EPS = 1e-5  # torch.nn.LayerNorm's default, which TransformerEncoderLayer uses


@contextmanager
def blas_threads(threads: int):
    """numpy's BLAS limited to `threads` threads inside the block (threadpoolctl), restored after."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, int(threads)), user_api="blas"):
        yield


def _rows_matmul(x: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """x (n, a) @ wt (a, b) in blocks of exactly BLOCK rows (the last one zero-padded)."""
    n = x.shape[0]
    out = np.empty((n, wt.shape[1]), dtype=np.float64)
    for lo in range(0, n, BLOCK):
        blk = x[lo : lo + BLOCK]
        if blk.shape[0] < BLOCK:
            pad = np.zeros((BLOCK, x.shape[1]), dtype=np.float64)
            pad[: blk.shape[0]] = blk
            out[lo:] = (pad @ wt)[: blk.shape[0]]
        else:
            out[lo : lo + BLOCK] = np.ascontiguousarray(blk) @ wt
    return out


class Linear:
    """y = x W^T + b; `of(weights, name)` reads a state dict's `<name>.weight` (out, in) and `<name>.bias`."""

    def __init__(self, w: np.ndarray, b: np.ndarray | None) -> None:
        self.wt = np.ascontiguousarray(np.asarray(w, dtype=np.float64).T)
        self.b = None if b is None else np.asarray(b, dtype=np.float64)

    @classmethod
    def of(cls, weights: dict, name: str) -> Linear:
        return cls(weights[f"{name}.weight"], weights.get(f"{name}.bias"))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        shape = x.shape
        y = _rows_matmul(x.reshape(-1, shape[-1]), self.wt)
        if self.b is not None:
            y += self.b
        return y.reshape(*shape[:-1], self.wt.shape[1])


def gelu(x: np.ndarray) -> np.ndarray:
    """x/2 (1 + erf(x / sqrt 2)), in place on a fresh array (x is not modified)."""
    from scipy.special import erf  # scipy.special is loaded by every run already (domain/garch.py)

    t = x / math.sqrt(2.0)
    erf(t, out=t)
    t += 1.0
    t *= x
    t *= 0.5
    return t


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = LN_EPS) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    sd = np.square(centred).mean(axis=-1, keepdims=True)
    sd += eps
    np.sqrt(sd, out=sd)
    centred /= sd
    centred *= gamma
    centred += beta
    return centred


def finite32(x: np.ndarray) -> np.ndarray:
    """The deep models' inputs: float32, NaN/inf -> 0 (inputs are session-normalized, 0 = the median); the one
    rule of training (runtime.as_tensor) and of scoring (as_input)."""
    return np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def as_input(x: np.ndarray) -> np.ndarray:
    """runtime.as_tensor's values (finite32) in float64."""
    return finite32(x).astype(np.float64)


# --- RankNet --------------------------------------------------------------------------------------
def ranknet_scores(state: dict, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """Scores of the rows of x (n, F) under a ranknet artifact's state (deep/ranknet.Scorer in eval mode)."""
    if state.get("kind") != "ranknet":
        raise ValueError(f"artifact is a {state.get('kind')!r} model, not a ranknet")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != state["n_features"]:
        raise ValueError(f"ranknet was trained on {state['n_features']} features, got {x.shape}")
    w = state["weights"]
    idx = sorted({int(k.split(".")[1]) for k in w if k.startswith("net.") and k.endswith(".weight")})
    if len(idx) != len(state["hidden"]) + 1:
        raise ValueError(f"ranknet weights hold {len(idx)} linear layers, hidden {state['hidden']} needs {len(state['hidden']) + 1}")
    h = as_input(x)
    with blas_threads(threads):
        for i in idx[:-1]:
            h = np.maximum(Linear.of(w, f"net.{i}")(h), 0.0)
        return Linear.of(w, f"net.{idx[-1]}")(h)[:, 0]


# --- temporal autoencoder -------------------------------------------------------------------------
def encode(state: dict, values: np.ndarray, ends: np.ndarray, threads: int = 1) -> np.ndarray:
    """z_t for the windows of `state["window"]` rows ending at `ends` (rows of values (n, F)): (len(ends), k)."""
    if state.get("kind") != "temporal_autoencoder":
        raise ValueError(f"artifact is a {state.get('kind')!r} model, not a temporal_autoencoder")
    w, f = int(state["window"]), int(state["n_features"])
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != f:
        raise ValueError(f"the autoencoder was trained on {f} features, got {values.shape}")
    ends = np.asarray(ends, dtype=np.int64)
    if ends.size == 0:
        return np.zeros((0, int(state["latent_dim"])))
    weights = state["weights"]
    first, second = Linear.of(weights, "encoder.1"), Linear.of(weights, "encoder.3")
    out = []
    with blas_threads(threads):
        for lo in range(0, ends.size, BLOCK):  # windows gathered a block at a time (W x F floats each)
            x = as_input(gather(values, ends[lo : lo + BLOCK], w)).reshape(-1, w * f)
            out.append(second(gelu(first(x))))
    return np.concatenate(out)


# --- Transformer over z ---------------------------------------------------------------------------
class _EncoderLayer:
    def __init__(self, weights: dict, prefix: str, heads: int) -> None:
        self.heads = heads
        w_in, b_in = weights[f"{prefix}.self_attn.in_proj_weight"], weights[f"{prefix}.self_attn.in_proj_bias"]
        d = w_in.shape[1]  # torch packs the q, k, v projections as rows [0, d), [d, 2d), [2d, 3d)
        self.q, self.k, self.v = (Linear(w_in[i * d : (i + 1) * d], b_in[i * d : (i + 1) * d]) for i in range(3))
        self.out_proj = Linear.of(weights, f"{prefix}.self_attn.out_proj")
        self.linear1, self.linear2 = Linear.of(weights, f"{prefix}.linear1"), Linear.of(weights, f"{prefix}.linear2")
        self.norm1 = (np.asarray(weights[f"{prefix}.norm1.weight"], np.float64), np.asarray(weights[f"{prefix}.norm1.bias"], np.float64))
        self.norm2 = (np.asarray(weights[f"{prefix}.norm2.weight"], np.float64), np.asarray(weights[f"{prefix}.norm2.bias"], np.float64))

    def __call__(self, u: np.ndarray, last_only: bool) -> np.ndarray:
        """u (B, L, d) -> (B, L, d), or (B, 1, d) for the last position alone."""
        b, length, d = u.shape
        hd = d // self.heads
        a = layer_norm(u, *self.norm1)
        k, v = self.k(a), self.v(a)
        q = self.q(np.ascontiguousarray(a[:, -1:, :]) if last_only else a)
        lq = q.shape[1]
        qh = q.reshape(b, lq, self.heads, hd).transpose(0, 2, 1, 3)  # (B, h, Lq, hd)
        kh = k.reshape(b, length, self.heads, hd).transpose(0, 2, 3, 1)  # (B, h, hd, L)
        vh = v.reshape(b, length, self.heads, hd).transpose(0, 2, 1, 3)  # (B, h, L, hd)
        logits = np.matmul(np.ascontiguousarray(qh), np.ascontiguousarray(kh)) / math.sqrt(hd)
        logits -= logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=-1, keepdims=True)
        att = np.matmul(p, np.ascontiguousarray(vh)).transpose(0, 2, 1, 3).reshape(b, lq, d)
        h = (u[:, -1:, :] if last_only else u) + self.out_proj(att)
        return h + self.linear2(gelu(self.linear1(layer_norm(h, *self.norm2))))


def transformer_scores(state: dict, z: np.ndarray, ends: np.ndarray, threads: int = 1) -> np.ndarray:
    """Scores of the z sequences of seq_len rows ending at `ends` (rows of z (n, k)); the Transformer of
    deep/sequence.SequenceTransformer in eval mode."""
    if state.get("kind") != "sequence_transformer":
        raise ValueError(f"artifact is a {state.get('kind')!r} model, not a sequence_transformer")
    p = state["params"]
    seq_len, heads, layers = int(p["seq_len"]), int(p["heads"]), int(p["layers"])
    weights = state["weights"]
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] != state["latent_dim"]:
        raise ValueError(f"the transformer reads z of dimension {state['latent_dim']}, got {z.shape}")
    ends = np.asarray(ends, dtype=np.int64)
    if ends.size == 0:
        return np.zeros(0)
    embed, head = Linear.of(weights, "embed"), Linear.of(weights, "head")
    position = np.asarray(weights["position"], dtype=np.float64)[:seq_len]
    stack = [_EncoderLayer(weights, f"encoder.layers.{i}", heads) for i in range(layers)]
    out = []
    per = max(1, (BLOCK * 8) // seq_len)  # sequences per pass (bounded memory)
    with blas_threads(threads):
        for lo in range(0, ends.size, per):
            u = embed(as_input(gather(z, ends[lo : lo + per], seq_len))) + position
            for i, layer in enumerate(stack):
                u = layer(u, last_only=i == layers - 1)
            out.append(head(u[:, -1, :])[:, 0])
    return np.concatenate(out)
