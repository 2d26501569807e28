"""Where a served bundle comes from: a model reference resolved to a version, then fetched to a directory.

Three forms (bentos/serving.yaml explains them): `models:/<name>@<alias>` (MLflow registry alias, what the
training pipeline promotes), `bento:<name>:<version>` (a BentoML model, packed into the bento by
`bentoml build`) and a filesystem path (one bundle, or a directory of bundles whose newest complete one
wins). `resolve` is cheap (one registry or directory lookup) so the hot-reload poller can call it every few
seconds; `fetch` downloads only a version it has not seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recsys.registry.bundle import META_FILE, latest_bundle

MLFLOW_PREFIX, BENTO_PREFIX = "models:/", "bento:"


@dataclass(frozen=True)
class Resolved:
    ref: str      # the reference as configured
    key: str      # what it points at right now; a new key means a new version to load
    version: str  # short label for logs and metrics (MLflow version, BentoML tag version, bundle dir name)


def kind(ref: str) -> str:
    if ref.startswith(MLFLOW_PREFIX):
        return "mlflow"
    return "bento" if ref.startswith(BENTO_PREFIX) else "path"


def parse_mlflow(ref: str) -> tuple[str, str]:
    name, sep, alias = ref[len(MLFLOW_PREFIX):].rpartition("@")
    if not sep or not name or not alias:
        raise ValueError(f"MLflow model reference {ref!r} must look like models:/<name>@<alias>")
    return name, alias


def resolve(ref: str, tracking_uri: str) -> Resolved:
    """The version `ref` points at now (FileNotFoundError / MlflowException when it points at nothing)."""
    source = kind(ref)
    if source == "mlflow":
        from recsys.registry.mlflow_registry import resolve_alias

        name, alias = parse_mlflow(ref)
        version, _ = resolve_alias(tracking_uri, name, alias)
        return Resolved(ref, f"{name}/{version}", version)
    if source == "bento":
        import bentoml

        model = bentoml.models.get(ref[len(BENTO_PREFIX):])
        return Resolved(ref, str(model.tag), str(model.tag.version))
    path = Path(ref)
    bundle = path if (path / META_FILE).is_file() else latest_bundle(path)
    bundle = bundle.resolve()
    return Resolved(ref, str(bundle), bundle.name)


def fetch(resolved: Resolved, tracking_uri: str, cache_dir: str | Path) -> tuple[Resolved, Path]:
    """A local bundle directory for `resolved` (an MLflow version is downloaded once into `cache_dir`).

    An alias can move between `resolve` and the download; the returned Resolved names what was fetched."""
    source = kind(resolved.ref)
    if source == "mlflow":
        from recsys.registry.mlflow_registry import download_bundle

        name, alias = parse_mlflow(resolved.ref)
        path = download_bundle(tracking_uri, name, alias, cache_dir)  # <cache>/<name>/<version>/bundle
        version = path.parent.name
        return Resolved(resolved.ref, f"{name}/{version}", version), path
    if source == "bento":
        import bentoml

        return resolved, Path(bentoml.models.get(resolved.key).path)
    return resolved, Path(resolved.key)
