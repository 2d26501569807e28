"""MLflow side of the model registry: log a training run, register its bundle, promote it with an alias.

The register step of the training pipeline calls `log_run` then `register_bundle` for a recommender that
passed the quality gate; batch inference (and the service image build) resolve the promoted version with
`download_bundle(name, alias)`. A registered version's source is the bundle directory logged under the
run's `bundle/` artifact path, so MLflow stores exactly the files `recsys.registry.bundle` wrote. Promotion
uses aliases ("production", "staging"): MLflow 3 dropped the old stages.

Everything takes the tracking URI explicitly (the same URI serves tracking and registry): nothing here
reads global MLflow state or imports an orchestration framework. For a local `sqlite:///.../mlflow.db`
backend, experiments created here keep their artifacts beside the database (`<db dir>/artifacts`), not in
MLflow's default `./mlruns` under whatever directory the process started in.
"""

from __future__ import annotations

import numbers
import re
import time
from pathlib import Path
from typing import Any, Mapping

from recsys.errors import ModelNotFound

BUNDLE_ARTIFACT_PATH = "bundle"
_MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value
_INVALID_NAME_CHARS = re.compile(r"[^\w\-. /:]")


def _client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def metric_key(name: str) -> str:
    """A metric/param name MLflow accepts: "ndcg@10" -> "ndcg_at_10"; other invalid characters -> "_"."""
    return _INVALID_NAME_CHARS.sub("_", str(name).replace("@", "_at_"))


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts to MLflow params: {"two_tower": {"epochs": 3}} -> {"two_tower.epochs": "3"}. None and
    empty values are left out: a parameter that is not set says nothing and clutters the run's page."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{metric_key(key)}"
        if value is None or (isinstance(value, (Mapping, list, tuple, str)) and not value):
            continue
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = str(value)[:_MAX_PARAM_LENGTH]
    return flat


def _default_artifact_location(tracking_uri: str, experiment: str) -> str | None:
    if not tracking_uri.startswith("sqlite:///"):
        return None  # a tracking server decides where artifacts go
    db_dir = Path(tracking_uri[len("sqlite:///"):]).resolve().parent
    return (db_dir / "artifacts" / metric_key(experiment).replace("/", "_")).as_uri()


def ensure_experiment(tracking_uri: str, experiment: str) -> str:
    """Id of the named experiment, created (artifacts beside a sqlite database) when missing."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    client = _client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(experiment, _default_artifact_location(tracking_uri, experiment))


def log_run(tracking_uri: str, experiment: str, params: Mapping[str, Any], metrics: Mapping[str, float],
            artifacts_dir: str | Path | None = None, tags: Mapping[str, Any] | None = None,
            run_name: str | None = None, artifact_path: str = BUNDLE_ARTIFACT_PATH,
            tables: Mapping[str, Any] | None = None) -> str:
    """Create a finished run with params (flattened), metrics (non-numbers skipped), tags and, when given,
    the files of `artifacts_dir` under `artifact_path` and each DataFrame of `tables` as `<name>.csv`
    (e.g. the evaluation table, the ranker's feature importance). Returns the run id."""
    from mlflow.entities import Metric, Param

    client = _client(tracking_uri)
    run = client.create_run(ensure_experiment(tracking_uri, experiment), run_name=run_name,
                            tags={k: str(v) for k, v in (tags or {}).items()})
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        metric_rows = [Metric(metric_key(k), float(v), now, 0) for k, v in metrics.items()
                       if isinstance(v, numbers.Real) and not isinstance(v, bool)]
        param_rows = [Param(k, v) for k, v in flatten_params(params).items()]
        for start in range(0, max(len(metric_rows), len(param_rows)), 100):  # MLflow batch limit: 100 params
            client.log_batch(run_id, metrics=metric_rows[start:start + 100], params=param_rows[start:start + 100])
        if artifacts_dir is not None:
            client.log_artifacts(run_id, str(artifacts_dir), artifact_path=artifact_path)
        for name, frame in (tables or {}).items():
            client.log_text(run_id, frame.to_csv(), f"{name}.csv")
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def register_bundle(tracking_uri: str, run_id: str, name: str, alias: str | None = None,
                    artifact_path: str = BUNDLE_ARTIFACT_PATH, tags: Mapping[str, Any] | None = None,
                    model_uri: str | None = None) -> str:
    """Register the bundle logged by run `run_id` as a new version of model `name` (created when missing);
    point `alias` at it when given. The version's source is `model_uri` when given (the MLflow model of
    recsys.registry.pyfunc: flavor and signature on the model page), else the run's bundle directory.
    Returns the version (a string, as MLflow reports it)."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    source, model_id = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path}", None
    if model_uri:  # MLflow would resolve a models:/ source through the global tracking URI: pass its location
        model_id = model_uri.removeprefix("models:/")
        source = client.get_logged_model(model_id).artifact_location
    version = client.create_model_version(name, source=source, run_id=run_id, model_id=model_id,
                                          tags={k: str(v) for k, v in (tags or {}).items()})
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def set_alias(tracking_uri: str, name: str, alias: str, version: str | int) -> None:
    """Point `alias` of model `name` at `version` (a rollback is the same call with an older version)."""
    _client(tracking_uri).set_registered_model_alias(name, alias, str(version))


def version_tags(tracking_uri: str, name: str, version: str | int) -> dict[str, str]:
    """The tags of version `version` of model `name` (e.g. `bundle_version`, the deploy pipeline's `bento_tag`)."""
    return dict(_client(tracking_uri).get_model_version(name, str(version)).tags)


def set_version_tags(tracking_uri: str, name: str, version: str | int, tags: Mapping[str, Any]) -> None:
    """Set `tags` (values as text) on version `version` of model `name`."""
    client = _client(tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def set_registered_model_tag(tracking_uri: str, name: str, key: str, value: Any) -> None:
    _client(tracking_uri).set_registered_model_tag(name, key, str(value))


def resolve_alias(tracking_uri: str, name: str, alias: str) -> tuple[str, str]:
    """(version, run_id) the alias points at; ModelNotFound when the model or alias is unknown (other
    MlflowExceptions, e.g. an unreachable server, pass through)."""
    from mlflow.exceptions import MlflowException

    try:
        version = _client(tracking_uri).get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise ModelNotFound(f"no version of model {name!r} has the alias {alias!r} in MLflow ({tracking_uri}); "
                            "train and register one first: python run.py --pipeline train") from error
    return str(version.version), version.run_id


def resolve_reference(tracking_uri: str, name: str, reference: str | int) -> tuple[str, str]:
    """(version, run_id) of `reference`: a version number ("3"), an alias ("production") or a model URI
    (`models:/<name>@<alias>`, `models:/<name>/<version>`, whose name must be `name`)."""
    text = str(reference)
    if text.startswith("models:/"):
        path = text[len("models:/"):]
        uri_name, sep, alias = path.rpartition("@")
        if not sep:
            uri_name, _, alias = path.rpartition("/")
        if uri_name != name:
            raise ValueError(f"{text} names model {uri_name!r}, not {name!r}")
        text = alias
    if text.isdigit():
        version = _client(tracking_uri).get_model_version(name, text)  # raises for an unknown version
        return str(version.version), version.run_id
    return resolve_alias(tracking_uri, name, text)


def download_bundle(tracking_uri: str, name: str, alias: str, dst_dir: str | Path,
                    artifact_path: str = BUNDLE_ARTIFACT_PATH) -> Path:
    """Download the bundle that `name@alias` points at into `dst_dir/<name>/<version>/` (reused when already
    there) and return the bundle directory."""
    version, run_id = resolve_alias(tracking_uri, name, alias)
    return download_version(tracking_uri, name, version, run_id, dst_dir, artifact_path)


def download_version(tracking_uri: str, name: str, version: str, run_id: str, dst_dir: str | Path,
                     artifact_path: str = BUNDLE_ARTIFACT_PATH) -> Path:
    """Download the bundle of version `version` (registered from run `run_id`) into
    `dst_dir/<name>/<version>/` (reused when already there); returns the bundle directory."""
    import mlflow.artifacts

    target = Path(dst_dir) / metric_key(name).replace("/", "_") / str(version)
    bundle = target / artifact_path
    if not (bundle / "bundle.json").is_file():
        target.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                            dst_path=str(target), tracking_uri=tracking_uri)
    return bundle
