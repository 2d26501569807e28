"""Deploy stage: pin a model version, build its bento, smoke-test it as it ships, record it, render the
Kubernetes manifests, containerize it, start a canary; and conclude a canary from its experiment readout."""

from steps.deploy.build_bento import build_bento
from steps.deploy.conclude_canary import conclude_canary
from steps.deploy.containerize_bento import containerize_bento
from steps.deploy.read_canary import read_canary
from steps.deploy.record_deployment import record_deployment
from steps.deploy.render_manifests import render_manifests
from steps.deploy.select_model import select_model
from steps.deploy.smoke_test import smoke_test
from steps.deploy.start_canary import start_canary

__all__ = ["select_model", "build_bento", "smoke_test", "record_deployment", "render_manifests",
           "containerize_bento", "start_canary", "read_canary", "conclude_canary"]
