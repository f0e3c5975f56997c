"""Model artifact files under the data folder: <data_dir>/models/<family>/<agent>/<version>.model.

Written atomically (a temporary file renamed into place); read back only through `load_artifact`, which
checks the file's sha256 against the one recorded in model_training_runs and names the file in the
error when it is missing or corrupt (the run then fails before any decision is written).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class ModelArtifactError(RuntimeError):
    """A model artifact is missing, unreadable or does not match its recorded sha256."""


def artifact_path(family: str, agent: str, version: str) -> str:
    """The path relative to the data folder (so a data folder can move)."""
    return f"models/{family}/{agent}/{version}.model"


def save_artifact(data_dir: Path, rel_path: str, content: bytes) -> Path:
    path = Path(data_dir) / rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == content:
        return path
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    return path


def load_artifact(data_dir: Path, rel_path: str, sha256: str | None) -> bytes:
    path = Path(data_dir) / rel_path
    try:
        content = path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"model artifact {path} is missing (retrain: materialize model_training on its training session)") from exc
    except OSError as exc:
        raise ModelArtifactError(f"model artifact {path} cannot be read: {exc}") from exc
    digest = hashlib.sha256(content).hexdigest()
    if sha256 and digest != sha256:
        raise ModelArtifactError(
            f"model artifact {path} is corrupt: sha256 {digest[:16]}.. differs from the recorded {sha256[:16]}.. "
            "(retrain: materialize model_training on its training session)"
        )
    return content
