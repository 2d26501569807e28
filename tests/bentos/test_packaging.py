"""Packaging: bentofile.yaml pins agree with requirements.txt, and `bentoml build` makes a bento that
carries the model bundle and a generated Dockerfile (checked in the exported archive; `bentoml
containerize` needs a Docker engine, which this machine does not have)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile

import pytest
import yaml

from bentos.settings import PROJECT_ROOT


def pins(lines):
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            out[name.split("[")[0].strip().lower()] = version.strip()
    return out


def test_bentofile_pins_match_requirements():
    bentofile = yaml.safe_load((PROJECT_ROOT / "bentofile.yaml").read_text())
    serving = pins(bentofile["python"]["packages"])
    runtime = pins((PROJECT_ROOT / "requirements.txt").read_text().splitlines())
    assert serving, "the bento declares its packages"
    assert {name: runtime.get(name) for name in serving} == serving
    assert "tensorflow" not in serving and "zenml" not in serving  # serving needs neither
    assert bentofile["service"] == "bentos.service:RecommenderService"


@pytest.mark.slow
def test_build_packs_the_bundle_and_a_dockerfile(bundles, tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}

    def run(*args):
        result = subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout

    tag = run("bentos.import_model", "--model", str(bundles["v1"]), "--name", "travel-recommender").strip()
    assert tag == "travel-recommender:v1"
    run("bentoml", "build")
    archive = tmp_path / "recommender.bento"
    run("bentoml", "export", "recommender:latest", str(archive))
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        dockerfile = tar.extractfile("./env/docker/Dockerfile").read().decode()
        requirements = tar.extractfile("./env/python/requirements.txt").read().decode()
    bundle = "./models/travel-recommender/v1"
    for path in ("bundle.json", "metrics.json", "recommender/recommender.json", "recommender/items.parquet"):
        assert f"{bundle}/{path}" in names, path
    assert "./src/bentos/service.py" in names and "./src/bentos/serving.yaml" in names
    assert not any(n.startswith(("./src/steps", "./src/pipelines", "./src/tests")) for n in names)
    assert dockerfile.startswith("# ===") or "FROM " in dockerfile
    assert "python:3.11" in dockerfile or "3.11" in dockerfile
    assert "lightgbm==4.7.0" in requirements and "tensorflow" not in requirements
