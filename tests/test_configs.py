"""Every file in configs/ is a valid run configuration for its pipeline, with no key that would be dropped.

ZenML ignores unknown keys silently (a misspelt `paramters:` or a step name that is not in the pipeline just
vanishes, and the run uses defaults), so each file is checked against the real objects: top-level, model
and step-configuration keys against ZenML's own models; `steps:` names against the pipeline's step
invocations; parameters against the pipeline and step signatures; and the plain-dict parameters that
recsys reads (data source, two-tower, index, candidate sources, gate) against what recsys accepts.
The file name says which pipeline a config is for: train*.yaml -> train_pipeline, batch*.yaml -> batch,
features*.yaml -> features_pipeline, drift*.yaml, retrain*.yaml, rollback*.yaml, deploy*.yaml, canary*.yaml
likewise. stream*.yaml configure the stream consumer, a long-running process and not a ZenML run:
tests/recsys/streaming/test_config.py validates them against recsys.streaming.config.
"""

import dataclasses
import importlib
import inspect
from pathlib import Path

import pandas as pd
import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (PROJECT_ROOT / "configs").glob("*.y*ml") if not p.name.startswith("stream"))
PIPELINES = {"train": ("pipelines.training", "train_pipeline"),
             "batch": ("pipelines.batch", "batch_inference_pipeline"),
             "features": ("pipelines.features", "features_pipeline"),
             "drift": ("pipelines.drift", "drift_pipeline"),
             "retrain": ("pipelines.retrain", "retrain_pipeline"),
             "rollback": ("pipelines.rollback", "rollback_pipeline"),
             "deploy": ("pipelines.deploy", "deploy_pipeline"),
             "canary": ("pipelines.canary", "canary_pipeline")}
# Rows of the evaluation table besides "recommender": recsys.training.comparison_models names.
COMPARISON_MODELS = {"popularity", "two_tower_only", "item_item_only"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@pytest.fixture(scope="module")
def pipelines():
    """path -> (pipeline, its step invocations), wired with the config's pipeline parameters (no run): a
    parameter may add steps (train_pipeline's `store_features` adds the features sub-pipeline)."""
    from zenml.utils import source_utils

    source_utils.set_custom_source_root(str(PROJECT_ROOT))
    prepared = {}

    def wire(path: Path):
        if path not in prepared:
            module, name = PIPELINES[path.stem.split("_")[0]]
            pipeline = getattr(importlib.import_module(module), name).copy()
            pipeline.prepare(**(load(path).get("parameters") or {}))
            prepared[path] = (pipeline, pipeline.invocations)
        return prepared[path]

    try:
        yield wire
    finally:
        source_utils.set_custom_source_root(None)


def settable_parameters(invocation) -> set:
    """Step parameters a config may set: not an artifact input and not passed in code by the pipeline."""
    names = set(inspect.signature(invocation.step.entrypoint).parameters)
    return names - set(invocation.input_artifacts) - set(invocation.parameters)


def test_there_are_configs_for_each_pipeline():
    prefixes = [path.stem.split("_")[0] for path in CONFIGS]
    assert set(prefixes) <= set(PIPELINES), f"config names must start with one of {list(PIPELINES)}"
    assert set(PIPELINES) <= set(prefixes)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_keys_are_real(path, pipelines):
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration
    from zenml.config.step_configurations import StepConfigurationUpdate
    from zenml.model.model import Model

    config = load(path)
    assert not set(config) - set(PipelineRunConfiguration.model_fields), "unknown top-level keys"
    PipelineRunConfiguration.model_validate(config)
    assert config.get("model", {}).get("name"), "every run versions a named ZenML model"
    assert not set(config["model"]) - set(Model.model_fields), "unknown model keys"

    pipeline, invocations = pipelines(path)
    assert not set(config.get("parameters", {})) - set(inspect.signature(pipeline.entrypoint).parameters)
    for step_name, step_config in (config.get("steps") or {}).items():
        assert step_name in invocations, f"{step_name!r} is not a step of {pipeline.name}: {list(invocations)}"
        assert not set(step_config) - set(StepConfigurationUpdate.model_fields), f"{step_name}: unknown keys"
        unknown = set(step_config.get("parameters", {})) - settable_parameters(invocations[step_name])
        assert not unknown, f"{step_name}: {sorted(unknown)} are not parameters it takes from a config"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_required_step_parameters_are_set(path, pipelines):
    config = load(path)
    _, invocations = pipelines(path)
    for name, invocation in invocations.items():
        signature = inspect.signature(invocation.step.entrypoint).parameters
        required = {p for p in settable_parameters(invocation) if signature[p].default is inspect.Parameter.empty}
        given = set(((config.get("steps") or {}).get(name) or {}).get("parameters", {}))
        assert required <= given, f"{name} needs {sorted(required - given)}"


def step_parameters(config: dict, step: str) -> dict:
    return ((config.get("steps") or {}).get(step) or {}).get("parameters", {})


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_recsys_parameters_are_accepted(path):
    """The dicts ZenML passes through unchecked name real recsys options."""
    from recsys.data.loader import SOURCES, _BUILDERS
    from recsys.data.splits import SPLIT_METHODS
    from recsys.retrieval.index import AnnIndex
    from recsys.retrieval.two_tower import TwoTowerConfig
    from recsys.training import SOURCE_CLASSES

    config = load(path)
    check_loop_parameters(config)
    check_deploy_parameters(config)
    if "source" not in (config.get("parameters") or {}):
        return
    source = config["parameters"]["source"]
    assert source in SOURCES
    accepted = set(inspect.signature(_BUILDERS[source]).parameters)
    assert not set(config["parameters"].get("source_params") or {}) - accepted
    if "split_data" in (config.get("steps") or {}):
        assert step_parameters(config, "split_data").get("method", "temporal_user") in SPLIT_METHODS
    fields = {f.name for f in dataclasses.fields(TwoTowerConfig)}
    assert not set(step_parameters(config, "train_retrieval").get("params") or {}) - fields
    index_options = set(inspect.signature(AnnIndex.build).parameters) - {"cls", "embeddings", "ids"}
    assert not set(step_parameters(config, "build_ann_index").get("params") or {}) - index_options
    sources = (step_parameters(config, "generate_candidates").get("params") or {}).get("sources") or {}
    kinds = {settings.get("source", name) for name, settings in sources.items() if settings is not None}
    assert not kinds - set(SOURCE_CLASSES), "a source is its kind's name or names its kind in `source:`"
    from recsys.serving.config import resolve_config

    resolve_config((step_parameters(config, "assemble_recommender").get("params") or {}).get("serving"))
    check_feature_parameters(config)


def check_feature_parameters(config: dict) -> None:
    """The feature job's engine and spec, and the Feast repo / environment the steps name, exist."""
    from recsys.features.batch import DEFAULTS
    from recsys.features.definitions import FeatureSpec
    from recsys.features.job import ENGINES

    job = step_parameters(config, "compute_features")
    assert job.get("engine", "duckdb") in ENGINES
    assert not set(job.get("duckdb") or {}) - set(DEFAULTS), "unknown DuckDB engine settings"
    assert not set(job.get("spec") or {}) - set(FeatureSpec.__dataclass_fields__) - {"vocabularies"}
    FeatureSpec.from_dict(job.get("spec") or {})  # windows must be whole days >= 1
    apply = step_parameters(config, "apply_feature_repo")
    repo = PROJECT_ROOT / apply.get("repo_path", "feature_repo")
    assert (repo / apply.get("fs_yaml", "feature_store.yaml")).is_file(), f"no Feast config in {repo}"
    if job and apply:
        assert job.get("repo_path", "feature_repo") == apply.get("repo_path", "feature_repo"), \
            "the job must write where the applied repo reads"


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem.startswith("train")], ids=lambda p: p.name)
def test_gate_names_real_metrics_and_models(path):
    """The thresholds read columns evaluate produces (at its configured k) and rows it scores."""
    from recsys.evaluation.metrics import ranking_metrics
    from recsys.registry.gate import CANDIDATE, check_gate

    config = load(path)
    ks = list(step_parameters(config, "evaluate").get("k", [10]))
    recs = pd.DataFrame({"user_id": ["u"] * 2, "rank": [1, 2], "item_id": ["a", "b"]})
    truth = pd.DataFrame({"user_id": ["u"], "item_id": ["a"]})
    columns = ranking_metrics(recs, truth, ks, n_items=2, item_categories=pd.Series({"a": "x", "b": "y"}),
                              item_popularity=pd.Series({"a": 0.5, "b": 0.5}))
    table = pd.DataFrame(0.5, index=[CANDIDATE, *COMPARISON_MODELS], columns=list(columns))
    check_gate(table, step_parameters(config, "quality_gate")["thresholds"])  # ValueError on unknown names


def check_loop_parameters(config: dict) -> None:
    """The monitoring loop's event source, drift thresholds, policy, promotion rule and recipe overrides."""
    from recsys.data.shifts import Shift
    from recsys.data.synthetic import generate_travel_data
    from recsys.data.windows import KINDS
    from recsys.monitoring.drift import Thresholds
    from recsys.monitoring.policy import RetrainPolicy
    from recsys.registry.promotion import PromotionRule
    from recsys.training import STAGES

    current = (config.get("parameters") or {}).get("current")
    if current is not None:
        assert current["source"] in KINDS and not set(current) - {"source", "params"}
        if current["source"] == "synthetic":
            params = dict(current.get("params") or {})
            Shift.parse(params.pop("shift", None))  # ValueError on an unknown kind or setting
            assert not set(params) - set(inspect.signature(generate_travel_data).parameters)
    Thresholds.parse(step_parameters(config, "check_drift").get("thresholds"))
    RetrainPolicy.model_validate(step_parameters(config, "decide_retrain").get("policy") or {})
    PromotionRule.model_validate(step_parameters(config, "compare_models").get("rule") or {})
    assert not set(step_parameters(config, "train_challenger").get("recipe") or {}) - set(STAGES)


def check_deploy_parameters(config: dict) -> None:
    """The deploy and canary pipelines' settings: canary, smoke test, manifests, canary rule."""
    from recsys.deploy.canary import CanaryRule, CanarySettings
    from recsys.deploy.manifests import ManifestSettings
    from recsys.deploy.smoke import SmokeSettings

    CanarySettings.model_validate((config.get("parameters") or {}).get("canary") or {})
    SmokeSettings.model_validate(step_parameters(config, "smoke_test").get("settings") or {})
    features = step_parameters(config, "smoke_test").get("online_features") or {}
    assert not set(features) - {"repo_path", "fs_yaml", "clock"}
    if features:
        assert (PROJECT_ROOT / features["repo_path"] / features["fs_yaml"]).is_file()
    ManifestSettings.model_validate(step_parameters(config, "render_manifests").get("manifests") or {})
    CanaryRule.model_validate(step_parameters(config, "read_canary").get("rule") or {})


def test_train_challenger_trains_as_train_does():
    """configs/train_challenger.yaml differs from configs/train.yaml only in how it registers the model."""
    train, challenger = load(PROJECT_ROOT / "configs/train.yaml"), load(PROJECT_ROOT / "configs/train_challenger.yaml")
    assert step_parameters(challenger, "register_model")["alias"] != "production"
    for config in (train, challenger):
        config["steps"].pop("register_model")
    assert train == challenger
