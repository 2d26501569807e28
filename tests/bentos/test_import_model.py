"""bentos/import_model.py through its command line, in a throw-away BentoML home: the same bundle imports
once; another bundle under the same version is refused, not silently replaced by the first one's files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from bentos.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_same_version_other_files_is_refused(tiny_recommender, tmp_path):
    from recsys.registry.bundle import save_bundle

    bundle = save_bundle(tiny_recommender, tmp_path / "good", {"ndcg@10": 0.1}, {}, version="v7")
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}

    def run(path):
        return subprocess.run([sys.executable, "-m", "bentos.import_model", "--model", str(path), "--name", "m"],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)

    first = run(bundle)
    assert first.returncode == 0 and first.stdout.strip() == "m:v7", first.stderr[-2000:]
    assert run(bundle).stdout.strip() == "m:v7"  # the same files: reused
    tampered = shutil.copytree(bundle, tmp_path / "tampered")
    (tampered / "recommender" / "items.parquet").write_bytes(b"PAR1 not a parquet file")
    refused = run(tampered)
    assert refused.returncode == 1 and "already holds other files" in refused.stderr
