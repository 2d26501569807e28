"""Rollback pipeline: one step that moves the `production` alias back (steps/registry/rollback_model.py);
a pipeline so the rollback is a recorded run like every promotion."""

from zenml import pipeline

from steps.registry import rollback_model


@pipeline(enable_cache=False)
def rollback_pipeline():
    rollback_model()
