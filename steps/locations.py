"""Where the steps find the project and the state they hand to each other, wherever they run.

A relative path in a config (`feature_repo`, `data/bundles`) starts at the project directory, never at the
working directory: on the local stack every step runs in the calling process, on Kubeflow each in its own
pod whose working directory need not be the one of the step before. The project directory is the ZenML
repository root (`.zen`: run.py initialises it, ZenML copies it into step images beside the code) or, where
there is none, the source root. State that steps hand over is a recsys.storage.Location: the same path on
the local stack, a working copy of <RECSYS_STATE_ROOT>/<path> on a remote one.
Called inside step bodies only (never at import).
"""

from __future__ import annotations

from pathlib import Path

from recsys.storage import Location, is_url, locate, state_root


def project_dir() -> Path:
    """The project's root directory (where feature_repo/ and the configs' data/ paths start)."""
    from zenml.client import Client
    from zenml.utils import source_utils

    return Path(Client().root or source_utils.get_source_root()).resolve()


def project_path(path: str) -> str:
    """A code path of the project (e.g. the Feast repo), absolute: the same in every step of a run."""
    return str(Path(path) if Path(path).is_absolute() else project_dir() / path)


def state_location(path: str) -> Location:
    """The Location of a config's state path (bundles, batch outputs): see recsys.storage."""
    needs_project = not is_url(path) and (not Path(path).is_absolute() or state_root() is not None)
    return locate(path, project_dir() if needs_project else None)  # no ZenML client for a plain path
