"""The serving configuration: bentos/serving.yaml, overridden by environment variables.

One small surface for everything the service reads at start-up: which model bundle to serve (and for an
A/B test or a shadow, which others), how often to look for a promoted version, where feedback goes and
where experiment logs and the event log are written. `RECSYS_SERVING_CONFIG` points at another YAML file of the same shape.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = Path(__file__).resolve().with_name("serving.yaml")


class ExperimentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="experiment name; salts the assignment hash")
    treatment: str | None = Field(None, description="model reference served to the treatment group")
    treatment_share: float = Field(0.5, ge=0.0, le=1.0, description="share of users in the treatment group")

    @property
    def active(self) -> bool:
        return bool(self.name and self.treatment)


class OnlineFeatureSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repo_path: str = Field("feature_repo", description="Feast repo directory")
    fs_yaml: str = Field("feature_store.yaml", description="feature_store.yaml variant (e.g. the Redis one)")
    clock: str = Field("wall", pattern="^(wall|snapshot)$", description="freshness measured against")
    max_age_hours: float = Field(36.0, gt=0, description="older online rows count as missing")
    item_refresh_seconds: float = Field(300.0, gt=0, description="item feature table refresh period")
    user_refresh_seconds: float = Field(60.0, ge=0, description="a user's daily rows are read at most this often "
                                        "(kept in between; 0: on every request)")


class ServingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="model reference: models:/<name>@<alias>, bento:<tag> or a path")
    tracking_uri: str = Field(description="MLflow tracking/registry URI")
    cache_dir: str = "data/serving/bundles"
    reload_interval_seconds: float = Field(30.0, ge=0.0)
    experiment: ExperimentSettings = ExperimentSettings()
    shadow: str | None = None
    kafka_bootstrap_servers: str | None = None
    feedback_topic: str = "recsys.events"
    event_log: str | None = Field("data/serving/events.jsonl", description="without Kafka: the durable log of "
                                  "accepted feedback every process of the deployment on the host shares")
    log_dir: str = "data/serving/logs"
    online_features: OnlineFeatureSettings = OnlineFeatureSettings()
    workers: int = Field(1, ge=1, description="BentoML worker processes")
    access_log: bool = Field(False, description="BentoML's per-request access log lines")
    trace_api: bool = Field(False, description="OpenTelemetry spans for the API routes")
    gc_freeze: bool = Field(True, description="gc.freeze() after each (re)load")
    warm_up: bool = Field(True, description="compute known users' ranked lists in the background after a load")
    warm_before_swap_seconds: float = Field(20.0, ge=0.0, description="hot reload: time spent computing the "
                                            "new version's lists for the most recent users before the swap")
    in_bento: dict = Field(default_factory=dict, description="overrides applied inside a built bento")


# Environment variable -> (section, key); section None = top level.
ENV = {
    "RECSYS_MODEL": (None, "model"),
    "MLFLOW_TRACKING_URI": (None, "tracking_uri"),
    "RECSYS_CACHE_DIR": (None, "cache_dir"),
    "RECSYS_RELOAD_INTERVAL": (None, "reload_interval_seconds"),
    "RECSYS_EXPERIMENT": ("experiment", "name"),
    "RECSYS_TREATMENT_MODEL": ("experiment", "treatment"),
    "RECSYS_TREATMENT_SHARE": ("experiment", "treatment_share"),
    "RECSYS_SHADOW_MODEL": (None, "shadow"),
    "KAFKA_BOOTSTRAP_SERVERS": (None, "kafka_bootstrap_servers"),
    "RECSYS_FEEDBACK_TOPIC": (None, "feedback_topic"),
    "RECSYS_EVENT_LOG": (None, "event_log"),
    "RECSYS_LOG_DIR": (None, "log_dir"),
    "RECSYS_FEATURE_REPO": ("online_features", "repo_path"),
    "RECSYS_FEATURE_STORE_YAML": ("online_features", "fs_yaml"),
    "RECSYS_FEATURE_CLOCK": ("online_features", "clock"),
    "RECSYS_WORKERS": (None, "workers"),
    "RECSYS_ACCESS_LOG": (None, "access_log"),
    "RECSYS_TRACE_API": (None, "trace_api"),
    "RECSYS_GC_FREEZE": (None, "gc_freeze"),
    "RECSYS_WARM_UP": (None, "warm_up"),
    "RECSYS_WARM_BEFORE_SWAP": (None, "warm_before_swap_seconds"),
}


def load_settings(path: str | Path | None = None, environ: dict | None = None) -> ServingSettings:
    """Settings from the YAML file (RECSYS_SERVING_CONFIG, default bentos/serving.yaml) with environment
    overrides; an empty variable counts as unset (null). Relative paths resolve against the project root."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get("RECSYS_SERVING_CONFIG") or DEFAULT_CONFIG)
    data = yaml.safe_load(path.read_text()) or {}
    if running_from_bento():
        overrides = data.get("in_bento") or {}
        unknown = set(overrides) - set(ServingSettings.model_fields) - {"in_bento"}
        if unknown:
            raise ValueError(f"{path}: unknown in_bento key(s) {sorted(unknown)}")
        data.update(overrides)
    for section in ("experiment", "online_features"):
        data[section] = data.get(section) or {}
    for name, (section, key) in ENV.items():
        if name in environ:
            value = environ[name] or None
            (data[section] if section else data)[key] = value
    settings = ServingSettings.model_validate(data)
    updates = {"cache_dir": str(resolve_path(settings.cache_dir)), "log_dir": str(resolve_path(settings.log_dir)),
               "event_log": str(resolve_path(settings.event_log)) if settings.event_log else None,
               "online_features": settings.online_features.model_copy(
                   update={"repo_path": str(resolve_path(settings.online_features.repo_path))})}
    if settings.tracking_uri.startswith("sqlite:///") and not settings.tracking_uri.startswith("sqlite:////"):
        updates["tracking_uri"] = "sqlite:///" + str(resolve_path(settings.tracking_uri[len("sqlite:///"):]))
    return settings.model_copy(update=updates)


def running_from_bento() -> bool:
    """True inside a built bento: its code sits in <bento>/src next to bento.yaml (a container, or
    `bentoml serve <bento tag>`), not in the project checkout."""
    return (PROJECT_ROOT.parent / "bento.yaml").is_file()


def resolve_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else PROJECT_ROOT / path
