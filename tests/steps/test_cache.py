"""The pipelines' cache key includes the recsys code, which ZenML's own key does not cover."""

from pipelines.batch import batch_inference_pipeline
from pipelines.data import data_pipeline
from pipelines.training import train_pipeline
from steps.cache import recsys_code_version


def test_recsys_code_version_is_a_stable_digest():
    version = recsys_code_version()
    assert version == recsys_code_version() and len(version) == 64 and int(version, 16) >= 0


def test_every_pipeline_uses_it():
    for pipeline in (train_pipeline, batch_inference_pipeline, data_pipeline):
        assert pipeline.configuration.cache_policy.cache_func.import_path == "steps.cache.recsys_code_version"
