"""Step: serve the built bento as it ships and check it; a failure stops the deploy pipeline here, before
anything is recorded, rendered, containerized or put on the running service.

The archive is imported into a fresh BentoML home (as a pod or a container starts from nothing) and served
with `bentoml serve <bento tag>` on a free loopback port with the bento's own configuration (`in_bento`:
its packed model, no reload); the online feature store (when the bundle's ranker reads one) is the
project's, as `online_features` says. Checks, in order (recsys/deploy/smoke.py): the packed bundle loads
offline, /readyz within the timeout, parity with `recommend_batch` on that same bundle (with the same
online store attached), the load probe against the p99 budget, the schemathesis fuzz. The figures go to
the step log and the `smoke_report` artifact.
"""

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Dict, Optional

from zenml import log_metadata, step
from zenml.logger import get_logger

from bentos.build import import_into, store_bundle
from bentos.devserver import BentoServer
from bentos.settings import ENV, load_settings
from recsys.deploy.smoke import SmokeSettings, run_checks
from recsys.registry.bundle import load_bundle
from recsys.storage import locate
from steps.locations import project_path
from steps.names import SMOKE_REPORT

logger = get_logger(__name__)


class SmokeTestFailed(RuntimeError):
    """The built bento failed its smoke test: the deploy pipeline stops."""


@step(enable_cache=False)
def smoke_test(bento: Dict[str, Any], settings: Optional[Dict[str, Any]] = None,
               online_features: Optional[Dict[str, str]] = None) -> Annotated[Dict[str, Any], SMOKE_REPORT]:
    """`settings`: recsys.deploy.smoke.SmokeSettings; `online_features`: repo_path, fs_yaml, clock of the
    feature store the served bundle reads (bentos/serving.yaml `online_features`)."""
    config = SmokeSettings.model_validate(settings or {})
    features = {"repo_path": "feature_repo", "fs_yaml": "feature_store.yaml", "clock": "wall",
                **(online_features or {})}
    with tempfile.TemporaryDirectory(prefix="recsys-smoke-") as tmp:
        home = Path(tmp) / "bentoml"
        archive = locate(bento["archive"], None).pull()
        tag = import_into(archive, home)
        env: Dict[str, Optional[str]] = {name: None for name in ENV}  # nothing of this process's serving setup
        env.update({"BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", "RECSYS_LOG_DIR": f"{tmp}/logs",
                    "RECSYS_CACHE_DIR": f"{tmp}/cache", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/unused.db",
                    "RECSYS_FEATURE_REPO": project_path(features["repo_path"]),
                    "RECSYS_FEATURE_STORE_YAML": features["fs_yaml"], "RECSYS_FEATURE_CLOCK": features["clock"]})
        try:
            recommender, meta = load_bundle(store_bundle(home, bento["model_tag"]))
        except Exception as error:  # noqa: BLE001 - any load failure fails the smoke test, with its reason
            raise SmokeTestFailed(f"the bundle packed in {tag} does not load: {type(error).__name__}: "
                                  f"{error}") from error
        attach_online(recommender, env)
        server = BentoServer(env, Path(tmp) / "serve.log", service=tag)
        try:
            try:
                server.start(timeout=config.ready_timeout_seconds)
            except (RuntimeError, TimeoutError) as error:
                raise SmokeTestFailed(f"{tag} not ready: {error}") from error
            report = run_checks(server.url, recommender, config, workdir=tmp)
        finally:
            server.stop()
    figures = {**report.figures, "bento_tag": tag, "model_version": str(meta.get("version"))}
    if not report.passed:
        logger.error(report.summary())
        raise SmokeTestFailed(report.summary())
    logger.info(report.summary())
    log_metadata({"smoke_test": figures})
    return {"passed": True, **figures}


def attach_online(recommender, env: Dict[str, Optional[str]]):
    """The online feature store the server attaches, attached to the offline copy too (None without store
    features): the settings come from the same environment, read the same way (bentos/settings.py)."""
    from recsys.features.online import attach_online_features
    from recsys.features.store import pull_state

    cfg = load_settings(environ={k: v for k, v in env.items() if v is not None} | {
        "RECSYS_MODEL": "unused", "MLFLOW_TRACKING_URI": "sqlite:///unused.db"}).online_features
    if getattr(getattr(getattr(recommender, "ranking", None), "features", None), "store", None) is not None:
        pull_state(cfg.repo_path, cfg.fs_yaml, which=("feast",))  # the online rows, wherever this step runs
    return attach_online_features(recommender, cfg.repo_path, cfg.fs_yaml, timedelta(hours=cfg.max_age_hours),
                                  cfg.clock, cfg.item_refresh_seconds)
