"""ZenML's Kubeflow orchestrator with working resource settings: the `recsys_kubeflow` orchestrator flavor.

ZenML 0.98's orchestrator hands `ResourceSettings(memory=...)` to kfp as a float (`set_memory_limit(8.0)`),
which kfp rejects at compile time, and sets only limits, never the requests Kubernetes schedules by. This
subclass turns the settings into what a cluster needs: cpu_count -> CPU request, memory -> memory request and
limit (in MiB, the unit kfp accepts); GPUs and the accelerator node selector stay with ZenML's code.
Everything else (the DAG, images, upload) is ZenML's.

Hand-written: `_cheap_task_checks`, because kfp 2.16's PipelineTask calls `inspect.stack()` (which reads the
source of every frame and scans sys.modules) on each `set_env_variable`, only to name the caller in an error
message; ZenML sets ~25 variables per task, so in a process that has TensorFlow loaded the train pipeline
spent ~30 of its ~40 s compile there (cProfile). The replacement makes the same check and message. stacks/kubeflow.py registers the flavor (its source
is this module, so the step images, which hold the project's code, can load it too).

Node selectors: ZenML 0.98 drops `pod_settings` from the Kubeflow settings (its validator rebuilds them from
the deprecated `node_selectors` key) and applies only the `accelerator` label; use resource requests.
"""

from __future__ import annotations

import contextlib
import math
import sys
from typing import Optional, Tuple, Type

from kfp.dsl.pipeline_task import PipelineTask
from zenml.config.resource_settings import ByteUnit, ResourceSettings
from zenml.integrations.kubeflow.flavors import KubeflowOrchestratorFlavor
from zenml.integrations.kubeflow.orchestrators import KubeflowOrchestrator

from stacks.kubeflow import FLAVOR_NAME


def kubernetes_resources(settings: ResourceSettings) -> dict[str, str]:
    """{"cpu": ..., "memory": ...} quantities of the settings, in the forms kfp's setters accept."""
    quantities = {}
    if settings.cpu_count:
        quantities["cpu"] = f"{math.ceil(settings.cpu_count * 1000)}m"
    if settings.memory:
        quantities["memory"] = f"{math.ceil(settings.get_memory(ByteUnit.MIB))}Mi"
    return quantities


@contextlib.contextmanager
def _cheap_task_checks():
    """PipelineTask._ensure_container_spec_exists without inspect.stack(), while the pipeline compiles."""
    original = PipelineTask._ensure_container_spec_exists

    def ensure_container_spec_exists(task) -> None:
        if task.container_spec is None:
            raise ValueError(f"{sys._getframe(1).f_code.co_name} can only be used on single-step components, not "
                             "pipelines used as components, or special components like importers.")

    PipelineTask._ensure_container_spec_exists = ensure_container_spec_exists
    try:
        yield
    finally:
        PipelineTask._ensure_container_spec_exists = original


class RecsysKubeflowOrchestrator(KubeflowOrchestrator):
    """KubeflowOrchestrator whose resource settings become requests (and a memory limit)."""

    def submit_pipeline(self, *args, **kwargs):
        with _cheap_task_checks():
            return super().submit_pipeline(*args, **kwargs)

    def _configure_container_resources(self, dynamic_component, resource_settings: ResourceSettings,
                                       node_selector_constraint: Optional[Tuple[str, str]] = None):
        quantities = kubernetes_resources(resource_settings)
        if "cpu" in quantities:  # a request, not a limit: a step may use idle cores, never be throttled
            dynamic_component = dynamic_component.set_cpu_request(quantities["cpu"])
        if "memory" in quantities:  # the limit too: a step past it is OOM-killed, not its neighbours
            dynamic_component = (dynamic_component.set_memory_request(quantities["memory"])
                                 .set_memory_limit(quantities["memory"]))
        gpu_only = resource_settings.model_copy(update={"cpu_count": None, "memory": None})
        return super()._configure_container_resources(dynamic_component, gpu_only, node_selector_constraint)


class RecsysKubeflowOrchestratorFlavor(KubeflowOrchestratorFlavor):
    """The `recsys_kubeflow` flavor: ZenML's Kubeflow orchestrator flavor with the class above."""

    @property
    def name(self) -> str:
        return FLAVOR_NAME

    @property
    def implementation_class(self) -> Type[RecsysKubeflowOrchestrator]:
        return RecsysKubeflowOrchestrator
