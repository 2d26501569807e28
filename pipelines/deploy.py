"""Deploy pipeline: a model version -> bento (BentoML model store, build) -> smoke test of the bento as it
ships -> recorded on the model version -> Kubernetes manifests, container image, and (by config) the canary
on the running service. The smoke test raises on failure, so nothing after it runs: nothing is recorded,
rendered, containerized or put on the service."""

from typing import Any, Dict, Optional

from zenml import pipeline

from steps.deploy import (build_bento, containerize_bento, record_deployment, render_manifests, select_model,
                          smoke_test, start_canary)


@pipeline(enable_cache=False)
def deploy_pipeline(reference: str = "production", image_repository: str = "recommender",
                    canary: Optional[Dict[str, Any]] = None):
    """`reference`: MLflow alias, version or models:/ URI to deploy; `image_repository`: the image name the
    manifests use and containerize builds (tag: the bento version); `canary`: recsys.deploy.canary.CanarySettings."""
    target = select_model(reference)
    bento = build_bento(target)
    report = smoke_test(bento)
    deployment = record_deployment(target, bento, report)
    render_manifests(deployment, image_repository, canary)
    containerize_bento(bento, report, image_repository)
    start_canary(deployment, canary)
