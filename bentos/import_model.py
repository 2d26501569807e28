"""Copy a model bundle into the BentoML model store, so `bentoml build` packs it into the bento.

    python -m bentos.import_model                  # the bundle bentos/serving.yaml's `model` points at
    python -m bentos.import_model --model models:/travel-recommender@staging
    python -m bentos.import_model --model data/bundles/travel-recommender

The BentoML model `<name>:<bundle version>` holds the bundle's files unchanged (bundle.json, metrics, config,
recommender/); labels record where it came from. Inside the built bento the service serves it as
`bento:<name>:latest` (bentofile.yaml sets RECSYS_MODEL). Importing the same version twice is a no-op.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sys
from pathlib import Path

from bentos.settings import load_settings
from bentos.sources import fetch, kind, parse_mlflow, resolve
from recsys.registry.bundle import read_bundle_meta

DEFAULT_NAME = "travel-recommender"


def bento_version(version: str) -> str:
    """A BentoML tag version (lower-case letters, digits, '-', '_', '.') for a bundle version."""
    return re.sub(r"[^a-z0-9._-]", "-", str(version).lower()).strip("-._") or "v"


def bundle_digest(path: Path) -> str:
    """SHA-256 over a bundle's files (relative paths and bytes, in path order): its content's identity."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def import_bundle(ref: str, tracking_uri: str, cache_dir: str, name: str | None = None,
                  labels: dict[str, str] | None = None, version: str | None = None) -> str:
    """Import the bundle `ref` points at; returns the BentoML tag. `labels` add to (or replace) the ones
    recorded (source, registry_version, bundle_version), e.g. the MLflow version of a downloaded bundle;
    `version`: the tag's version (default: the bundle's). A tag already in the store is reused only when it
    holds the same files (bundle_digest), never silently for other content under the same version."""
    import bentoml
    from bentoml.exceptions import NotFound

    resolved, path = fetch(resolve(ref, tracking_uri), tracking_uri, cache_dir)
    meta = read_bundle_meta(path)
    name = name or (parse_mlflow(ref)[0] if kind(ref) == "mlflow" else DEFAULT_NAME)
    tag, digest = f"{name}:{bento_version(version or meta['version'])}", bundle_digest(path)
    try:
        existing = bentoml.models.get(tag)
    except NotFound:
        pass
    else:
        if existing.info.metadata.get("sha256", digest) != digest:
            raise ValueError(f"BentoML model {tag} already holds other files than {ref} ({path}): "
                             "import it under another version, or delete the old one (bentoml models delete)")
        return str(existing.tag)
    labels = {"source": kind(ref), "registry_version": resolved.version, "bundle_version": str(meta["version"]),
              **{k: str(v) for k, v in (labels or {}).items()}}
    metadata = {"reference": ref, "resolved": resolved.key, "created_at": meta.get("created_at"), "sha256": digest,
                "git_sha": meta.get("git_sha"), "metrics": {k: v for k, v in meta.get("metrics", {}).items()
                                                           if isinstance(v, (int, float))}}
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
        shutil.copytree(path, model.path, dirs_exist_ok=True)
    return tag


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model reference (default: `model` of the serving config)")
    parser.add_argument("--name", help=f"BentoML model name (default: the MLflow model name, else {DEFAULT_NAME})")
    args = parser.parse_args(argv)
    settings = load_settings()
    ref = args.model or settings.model
    try:
        tag = import_bundle(ref, settings.tracking_uri, settings.cache_dir, args.name)
    except Exception as error:  # noqa: BLE001 - a CLI: say what failed, exit non-zero
        print(f"import_model: cannot import {ref}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
