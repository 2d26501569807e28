"""Build, ship and containerize the recommender bento through BentoML's Python API.

Where this sits: the deploy pipeline's steps (steps/deploy/) call these after importing the model bundle
into the BentoML model store (bentos/import_model.py). The runtime is declared once, in bentofile.yaml;
`build` reads it and only pins `models` to the imported tag (the file says `travel-recommender:latest`,
whatever was imported last), so the bento holds exactly the version being deployed. `export` / `ensure`
move the bento between processes (on Kubeflow each step is a pod with its own BentoML home).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from bentos.settings import PROJECT_ROOT

BENTOFILE = PROJECT_ROOT / "bentofile.yaml"


def build(model_tag: str, labels: dict[str, str] | None = None, version: str | None = None,
          bentofile: Path = BENTOFILE) -> str:
    """Build the bento of bentofile.yaml with `model_tag` packed; returns the bento tag."""
    import bentoml

    config = yaml.safe_load(Path(bentofile).read_text())
    config["models"] = [model_tag]
    config["labels"] = {**(config.get("labels") or {}), **{k: str(v) for k, v in (labels or {}).items()}}
    bento = bentoml.bentos.build(build_ctx=str(Path(bentofile).parent), version=version, **config)
    return str(bento.tag)


def export(tag: str, path: str | Path) -> Path:
    """The bento as one archive file (`bentoml import <file>` restores it, e.g. in another pod)."""
    import bentoml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(bentoml.bentos.export_bento(tag, str(path)))


def ensure(tag: str, archive: str | Path | None) -> str:
    """The bento `tag` in this process's BentoML store, imported from `archive` when it is not there."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return str(bentoml.bentos.get(tag).tag)
    except NotFound:
        if archive is None:
            raise
    return str(bentoml.bentos.import_bento(str(archive)).tag)


def import_into(archive: str | Path, home: str | Path) -> str:
    """Import a bento archive into another BentoML home (`bentoml import`, in a child process: this
    process's store is fixed at BentoML's first use); returns the bento tag. Its model comes along."""
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    done = subprocess.run([sys.executable, "-m", "bentoml", "import", str(archive)], env=env, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"bentoml import {archive} failed: {(done.stdout + done.stderr)[-2000:]}")
    return bento_tag_of(archive)


def bento_tag_of(archive: str | Path) -> str:
    """The bento tag recorded in an archive's bento.yaml."""
    import tarfile

    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.lstrip("./") == "bento.yaml")
        info = yaml.safe_load(tar.extractfile(member).read())
    return f"{info['name']}:{info['version']}"


def store_bundle(home: str | Path, model_tag: str) -> Path:
    """Where the model `model_tag` lies in the BentoML home `home` (BentoML's store layout:
    <home>/models/<name>/<version>), e.g. the one an archive brought into a home by `import_into`."""
    name, version = model_tag.split(":", 1)
    path = Path(home) / "models" / name / version
    if not path.is_dir():
        raise FileNotFoundError(f"model {model_tag} is not in the BentoML home {home}")
    return path


def packed_model(tag: str) -> tuple[str, Path]:
    """(model tag, bundle directory) of the model packed in the bento `tag`: what the service inside it
    serves. Models live in the BentoML model store (an imported bento archive brings its own)."""
    import bentoml

    (model,) = bentoml.bentos.get(tag).info.models
    return str(model.tag), Path(bentoml.models.get(model.tag).path)


def containerize(tag: str, image: str, backend: str = "docker") -> dict:
    """`bentoml containerize` through the API when `backend` (docker, podman, buildah, ...) is installed and
    answers; otherwise nothing is built and the reason is returned."""
    import bentoml

    if shutil.which(backend) is None:
        return {"built": False, "image": image, "reason": f"no container engine: `{backend}` is not installed"}
    try:
        healthy = bentoml.container.health(backend)
    except Exception:  # noqa: BLE001 - e.g. the docker CLI without a daemon behind it: health() raises
        healthy = False
    if not healthy:
        return {"built": False, "image": image,
                "reason": f"no container engine: `{backend}` is installed but no {backend} engine answers"}
    bentoml.container.build(tag, backend=backend, image_tag=(image,))
    return {"built": True, "image": image, "reason": f"built with {backend}"}
