"""Deep agents on the CPU (issue #17): a pairwise RankNet, a temporal autoencoder for z_t and a
Transformer sequence model over z_t. PyTorch is an optional extra (`pip install -e ".[deep]"`,
pinned to torch==2.13.0, a CPU build); without it the deep agents are absent, said once at start-up
(`deep_unavailable_reason()`), never an error.

Pure math: tensors in, tensors/arrays out; no Dagster, DuckDB or file I/O (artifacts are bytes).
"""

from __future__ import annotations

import importlib.util
import sys


def torch_available() -> bool:
    """True when PyTorch can be imported (the [deep] extra is installed). Looked up, not imported:
    importing torch costs about a second of every start-up that never trains a deep model."""
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None  # None: import explicitly blocked
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def deep_unavailable_reason() -> str | None:
    """None when the deep agents can run, else one sentence saying why they are absent."""
    if torch_available():
        return None
    return 'PyTorch is not installed: the deep agents (ranknet, temporal autoencoder, transformer) are absent; pip install -e ".[deep]"'
