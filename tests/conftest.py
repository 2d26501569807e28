"""Shared test setup: quiet, offline-friendly environment and a throw-away ZenML client.

The environment is set before anything imports ZenML, MLflow or TensorFlow. `clean_zenml_client` follows
zenml-io/template-e2e-batch tests/conftest.py: its own global config, store and repository in a temp dir,
with the project's `recsys-local` stack registered (state under <tmp>/data) and active.
"""

import logging
import os
import shutil
from pathlib import Path

import pytest

os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = {"n_users": 60, "n_items": 30, "n_events": 1500, "seed": 3}


@pytest.fixture(scope="session")
def tiny_dataset():
    """A small validated synthetic Dataset (recsys.data.synthetic; deterministic)."""
    from recsys.data.loader import load_dataset

    return load_dataset("synthetic", TINY_DATA)


@pytest.fixture
def tiny_recommender(tiny_dataset):
    """A real Recommender without the two-tower source (no TensorFlow), fitted on all of tiny_dataset."""
    from recsys.training import build_recommender, fit_candidate_generator

    ds = tiny_dataset
    generator = fit_candidate_generator(ds.interactions, ds.interactions.iloc[:0], ds.items, ds.users)
    return build_recommender(generator, None, ds.items, ds.users, ds.interactions)


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole test session (starting one takes ~20 s on 2 cores). py4j's INFO
    lines at interpreter exit would hit pytest's closed capture stream ("--- Logging error ---"), as run.py
    keeps it at WARNING (cli/output.py) the tests do too."""
    from recsys.features.spark_job import spark_session

    logging.getLogger("py4j").setLevel(logging.WARNING)

    session = spark_session("local[2]", "recsys-tests", {"spark.sql.shuffle.partitions": 4,
                                                         "spark.ui.showConsoleProgress": "false",
                                                         "spark.driver.memory": "1g"})
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def clean_zenml_client(tmp_path_factory):
    """A ZenML client isolated from the developer's; cwd is its temp dir, so configs' data/ paths land there."""
    from zenml.client import Client
    from zenml.config.global_config import GlobalConfiguration
    from zenml.utils import source_utils

    from stacks import ensure_repository
    from stacks.local import register_local_stack

    saved = {name: os.environ.get(name) for name in ("ZENML_CONFIG_PATH", "ZENML_REPOSITORY_PATH")}
    original_config, original_client = GlobalConfiguration.get_instance(), Client.get_instance()
    original_cwd = os.getcwd()
    GlobalConfiguration._reset_instance()
    Client._reset_instance()
    root = tmp_path_factory.mktemp("zenml-project")
    # The Feast repo too: pipelines apply it and its state (data/feast, data/features) lands under root/data.
    shutil.copytree(PROJECT_ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("__pycache__"))
    os.environ["ZENML_CONFIG_PATH"] = str(root / ".zenconfig")
    os.environ.pop("ZENML_REPOSITORY_PATH", None)
    os.chdir(root)
    source_utils.set_custom_source_root(str(PROJECT_ROOT))  # steps resolve from the project, not from root
    ensure_repository(root)
    register_local_stack(root / "data")
    try:
        yield Client()
    finally:
        source_utils.set_custom_source_root(None)
        os.chdir(original_cwd)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        GlobalConfiguration._reset_instance(original_config)
        Client._reset_instance(original_client)
