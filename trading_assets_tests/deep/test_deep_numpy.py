"""The deep families' scoring in numpy (domain/deep/forward.py, torch_state.py) against PyTorch on the same
trained weights: the artifact read without torch equals torch.load's tensors exactly; the forward passes
agree with torch's eval-mode modules within the stated tolerance |numpy - torch| <= 1e-5 x (1 + |torch|)
(measured ~1e-7: torch computes in float32, numpy in float64); a row's score does not depend on the rows
scored with it (bit for bit); a tampered artifact is refused; and scoring runs in an interpreter where
torch cannot be imported. Training needs torch: skipped (with the reason) without the [deep] extra."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='PyTorch absent: pip install -e ".[deep]"')

from trading_assets.domain.deep import forward  # noqa: E402
from trading_assets.domain.deep.ranknet import RankNetParams, fit_ranknet, predict_ranknet  # noqa: E402
from trading_assets.domain.deep.runtime import from_bytes  # noqa: E402
from trading_assets.domain.deep.sequence import (  # noqa: E402
    AutoencoderParams,
    TransformerParams,
    encode,
    fit_autoencoder,
    fit_transformer,
    predict_transformer,
)
from trading_assets.domain.deep.torch_state import load_state  # noqa: E402
from trading_assets.domain.deep.windows import window_ends  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOL = 1e-5
NO_TORCH = (  # a fresh interpreter's preamble: importing torch fails as if the [deep] extra were not installed
    "import importlib.abc, sys\n"
    "class NoTorch(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, NoTorch())\n"
)


def _close(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / (1 + |ref|), asserted <= TOL."""
    err = float(np.max(np.abs(got - ref) / (1.0 + np.abs(ref)))) if ref.size else 0.0
    assert err <= TOL, err
    return err


def _same(a, b, path=""):
    """a (torch_state) holds exactly b (torch.load): same keys, same plain values, arrays = tensors bit for bit."""
    if isinstance(b, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in b:
            _same(a[k], b[k], f"{path}/{k}")
    elif isinstance(b, torch.Tensor):
        ref = b.numpy()
        assert isinstance(a, np.ndarray) and a.dtype == ref.dtype and a.shape == ref.shape and np.array_equal(a, ref), path
    else:
        assert a == b, (path, a, b)


@pytest.fixture(scope="module")
def ranknet_blob():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40 * 30, 7)).astype(np.float32)
    y = x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.standard_normal(x.shape[0])
    blob, _ = fit_ranknet(x, y, np.repeat(np.arange(40), 30), RankNetParams(hidden=(16, 8), epochs=2, pairs_per_session=100, seed=3))
    return blob


@pytest.fixture(scope="module")
def sequence_blobs():
    """An autoencoder (window 4, k 3) and a Transformer (L 6, 2 heads, 2 layers) trained a few epochs on a
    panel of 12 symbols x 30 sessions x 5 features with holes."""
    rng = np.random.default_rng(1)
    codes = np.repeat(np.arange(12), 30)
    values = rng.standard_normal((codes.size, 5)).astype(np.float32)
    values[rng.random(values.shape) < 0.05] = np.nan
    ae_blob, _ = fit_autoencoder(values, window_ends(codes, 4), AutoencoderParams(window=4, latent_dim=3, hidden=16, epochs=2, seed=2))
    z = encode(ae_blob, values, window_ends(codes, 4)).astype(np.float32)
    zfull = np.zeros((codes.size, 3), dtype=np.float32)
    zfull[window_ends(codes, 4)] = z
    ends = window_ends(codes, 6 + 4 - 1)
    target = rng.uniform(-0.5, 0.5, codes.size).astype(np.float32)
    tp = TransformerParams(seq_len=6, d_model=16, heads=2, layers=2, ff=32, dropout=0.1, epochs=2, batch_size=32, seed=4)
    tf_blob, _ = fit_transformer(zfull, ends, target, tp)
    return {"values": values, "codes": codes, "ae": ae_blob, "tf": tf_blob, "z": zfull, "ends": ends}


def test_the_artifact_read_without_torch_holds_torch_loads_tensors(ranknet_blob, sequence_blobs):
    for blob in (ranknet_blob, sequence_blobs["ae"], sequence_blobs["tf"]):
        _same(load_state(blob), from_bytes(blob))


def test_ranknet_in_numpy_matches_torch_and_does_not_depend_on_the_batch(ranknet_blob):
    rng = np.random.default_rng(5)
    n = 2 * forward.BLOCK + 300  # three blocks, the last one padded
    x = rng.standard_normal((n, 7)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan  # NaN -> 0 on both paths
    state = load_state(ranknet_blob)
    got = forward.ranknet_scores(state, x)
    _close(got, predict_ranknet(ranknet_blob, x))
    # a row alone, or anywhere in another batch (across the BLOCK boundary too): the same bits
    b = forward.BLOCK
    for lo, k in [(0, 1), (7, 1), (3, 40), (b - 10, 30), (n - 1, 1), (100, b + 50), (b + 5, 1)]:
        assert np.array_equal(forward.ranknet_scores(state, x[lo : lo + k]), got[lo : lo + k]), (lo, k)
    with pytest.raises(ValueError, match="trained on 7 features"):
        forward.ranknet_scores(state, x[:, :3])


def test_encoder_and_transformer_in_numpy_match_torch_and_do_not_depend_on_the_batch(sequence_blobs):
    s = sequence_blobs
    ae, tf = load_state(s["ae"]), load_state(s["tf"])
    ends_ae = window_ends(s["codes"], 4)
    z = forward.encode(ae, s["values"], ends_ae)
    _close(z, encode(s["ae"], s["values"], ends_ae))
    scores = forward.transformer_scores(tf, s["z"], s["ends"])
    _close(scores, predict_transformer(s["tf"], s["z"], s["ends"]))
    for lo, n in [(0, 1), (5, 1), (2, 17), (len(s["ends"]) - 1, 1)]:
        assert np.array_equal(forward.transformer_scores(tf, s["z"], s["ends"][lo : lo + n]), scores[lo : lo + n]), (lo, n)
        assert np.array_equal(forward.encode(ae, s["values"], ends_ae[lo : lo + n]), z[lo : lo + n]), (lo, n)
    with pytest.raises(ValueError, match="not a sequence_transformer"):
        forward.transformer_scores(ae, s["z"], s["ends"])


def _torch_predict_with_history(artifact: bytes, x, history):
    """The family's scoring as it was in torch (transformer.predict_with_history before the numpy passes)."""
    from trading_assets.domain.agents.transformer import scoring_rows

    state = from_bytes(artifact)
    ae_state, tf_state = state["autoencoder"], state["transformer"]
    w, k, seq_len = ae_state["window"], ae_state["latent_dim"], tf_state["params"]["seq_len"]
    values, has_row, idx, scored, need = scoring_rows(x, history, w, seq_len)
    n = values.shape[0]
    zfull = np.zeros((n, k), dtype=np.float32)
    zfull[need] = encode(ae_state, values, need)
    score_rows = np.full(n, np.nan)
    score_rows[scored] = predict_transformer(tf_state, zfull, scored)
    score = np.full(x.height, np.nan)
    score[np.flatnonzero(has_row)] = score_rows[idx]
    return score


def test_the_transformer_family_scores_as_in_torch_through_the_agent(tmp_path):
    """The agent's predict_with_history (numpy) against the same steps in torch, on an artifact of the family
    (the autoencoder and the Transformer trained together by train_variant, as the scaffold does); and the
    same call in an interpreter where torch cannot be imported gives the same bits."""
    import dataclasses
    from datetime import date

    import polars as pl

    from trading_assets.domain import calendar
    from trading_assets.domain.agents.transformer import TransformerAgent
    from trading_assets.domain.models.fit import train_variant
    from trading_assets.domain.models.normalize import rank_gauss
    from trading_assets.settings import ModelSettings
    from trading_assets_tests.models.fixtures import market

    f, lab = market(date(2024, 1, 2), date(2024, 9, 30), n_symbols=10)
    agent = TransformerAgent()
    cols = list(agent.features(ModelSettings()))
    x = rank_gauss(f.select("date", "symbol", *cols), cols)
    small = (("ae_epochs", 1), ("ae_windows", 1000), ("tf_epochs", 1), ("tf_sequences", 500), ("window", 5), ("seq_len", 8), ("latent_dim", 4))
    variant = dataclasses.replace(agent.variants(ModelSettings())[0], params=small, window_years=None)
    s = ModelSettings(min_train_sessions=100, max_train_rows=1500)
    r = train_variant(agent, variant, date(2024, 8, 1), x, lab, date(2024, 1, 2), "fv", s, seed=7)
    assert r.status == "TRAINED"
    day = calendar.sessions(date(2024, 9, 2), date(2024, 9, 30))[-1]
    hist = x.filter((pl.col("date") >= calendar.lookback_start(day, agent.lookback_sessions(variant))) & (pl.col("date") <= day))
    rows = x.filter(pl.col("date") == day)
    score, z = agent.predict_with_history(r.artifact, rows, hist, variant, s)
    ref = _torch_predict_with_history(r.artifact, rows, hist)
    assert np.isfinite(ref).sum() == rows.height and np.array_equal(np.isfinite(score), np.isfinite(ref))
    _close(score, ref)
    assert z.shape == (rows.height, 4) and np.isfinite(z).all()
    (tmp_path / "tf.model").write_bytes(r.artifact)
    rows.write_parquet(tmp_path / "rows.parquet")
    hist.write_parquet(tmp_path / "hist.parquet")
    np.save(tmp_path / "score.npy", score)
    code = (
        NO_TORCH + "import dataclasses\nimport numpy as np, polars as pl\n"
        "from trading_assets.domain.agents.transformer import TransformerAgent\n"
        "from trading_assets.settings import ModelSettings\n"
        "agent = TransformerAgent()\n"
        f"variant = dataclasses.replace(agent.variants(ModelSettings())[0], params={small!r}, window_years=None)\n"
        f"score, _ = agent.predict_with_history(open({str(tmp_path / 'tf.model')!r}, 'rb').read(), pl.read_parquet({str(tmp_path / 'rows.parquet')!r}), "
        f"pl.read_parquet({str(tmp_path / 'hist.parquet')!r}), variant, ModelSettings(min_train_sessions=100, max_train_rows=1500))\n"
        f"assert np.array_equal(score, np.load({str(tmp_path / 'score.npy')!r}))\n"
        "assert 'torch' not in sys.modules\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]


def test_a_tampered_or_foreign_artifact_is_refused(ranknet_blob, tmp_path):
    import io
    import zipfile

    with pytest.raises(ValueError, match="not a readable deep-model artifact"):
        load_state(b"corrupt")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"kind": "ranknet", "x": Evil()}, protocol=2))
        zf.writestr("archive/byteorder", "little")
    with pytest.raises(ValueError, match="names posix.system|names os.system"):
        load_state(buf.getvalue())
    # a storage shorter than the tensor it backs
    src = zipfile.ZipFile(io.BytesIO(ranknet_blob))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name in src.namelist():
            data = src.read(name)
            zf.writestr(name, data[:8] if name.endswith("/data/0") else data)
    with pytest.raises(ValueError, match="storage 0 holds 2 elements"):
        load_state(out.getvalue())


def test_scoring_needs_no_torch(ranknet_blob, tmp_path):
    """In an interpreter where importing torch fails, the ranknet agent scores from the artifact."""
    art = tmp_path / "ranknet.model"
    art.write_bytes(ranknet_blob)
    x = np.random.default_rng(9).standard_normal((20, 7)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "ref.npy", forward.ranknet_scores(load_state(ranknet_blob), x))
    code = (
        NO_TORCH + "import numpy as np\n"
        "from trading_assets.domain.deep.forward import ranknet_scores\n"
        "from trading_assets.domain.deep.torch_state import load_state\n"
        f"s = ranknet_scores(load_state(open({str(art)!r}, 'rb').read()), np.load({str(tmp_path / 'x.npy')!r}))\n"
        f"assert np.array_equal(s, np.load({str(tmp_path / 'ref.npy')!r}))\n"
        "assert 'torch' not in sys.modules\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
