"""Every pipeline in run.py's PIPELINES table, compiled for the `recsys-kubeflow` stack with its default
config and the stack's run options, to the Kubeflow Pipelines spec a cluster would receive.

What runs is ZenML's own Kubeflow orchestrator (our `recsys_kubeflow` subclass) through `pipeline()`, stopped
where it would upload: `_upload_and_run_pipeline` records the compiled YAML instead. Bypassed in this file
only, because no cluster, Docker engine or ZenML server exists here: the local image builder's `build`
(records the build context instead: Dockerfile, requirements, files), the orchestrator's kube-context and
local-component checks, the stack's "remote orchestrator needs a ZenML server" check, and the artifact
store (a local one instead of gs://, whose filesystem package is not installed; nothing is written to it
because the code goes into the image). Each pipeline takes a few seconds.
"""

import re
import tarfile
from pathlib import Path

import pytest
import yaml

import run
from stacks.kubeflow import APT_PACKAGES, STACK_NAME, STEP_RESOURCES, STORE_PACKAGES, requirement_lines

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUILT = sorted(name for name, entry in run.PIPELINES.items() if entry)  # new pipelines are covered as added
ENV = {"RECSYS_KUBE_CONTEXT": "ctx", "RECSYS_ARTIFACT_STORE": "gs://bucket/zenml",
       "RECSYS_CONTAINER_REGISTRY": "ghcr.io/me", "RECSYS_MLFLOW_TRACKING_URI": "https://mlflow.example.com",
       "RECSYS_MLFLOW_TRACKING_TOKEN": "token"}
STATE_ROOT = "gs://bucket/zenml/recsys-state"
KEPT_OUT = ("data", ".venv", ".zenconfig", ".bentoml", "mlruns")  # never in a step image
ZENML_MARKER = ".zen"  # ZenML's build context always includes it (see test_dockerignore_...)


@pytest.fixture(scope="module")
def kubeflow(clean_zenml_client, tmp_path_factory):
    """The kubeflow stack registered and active in the throw-away client; yields (run options, captured)."""
    from zenml.enums import StackComponentType as T
    from zenml.image_builders.local_image_builder import LocalImageBuilder
    from zenml.integrations.kubeflow.orchestrators.kubeflow_orchestrator import KubeflowOrchestrator
    from zenml.stack.stack import Stack

    from stacks.kubeflow import register_kubeflow_stack
    from stacks.local import STACK_NAME as LOCAL_STACK

    captured = {}

    def build(self, image_name, build_context, docker_build_options=None, container_registry=None):
        archive = tmp_path_factory.mktemp("build") / "context.tar"
        with open(archive, "wb") as f:
            build_context.write_archive(f)
        captured["builds"].append((image_name, archive))
        return image_name

    def upload(self, snapshot, pipeline_file_path, run_name):
        captured["spec"] = yaml.safe_load(Path(pipeline_file_path).read_text())
        captured["snapshot"] = snapshot

    client = clean_zenml_client
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENV.items():
            patch.setenv(name, value)
        options = register_kubeflow_stack()
        store = client.create_stack_component("compile-test-store", "local", T.ARTIFACT_STORE,
                                              {"path": str(tmp_path_factory.mktemp("artifacts"))})
        client.update_stack(STACK_NAME, component_updates={T.ARTIFACT_STORE: [store.name]})
        patch.setattr(LocalImageBuilder, "build", build)
        patch.setattr(KubeflowOrchestrator, "_upload_and_run_pipeline", upload)
        patch.setattr(KubeflowOrchestrator, "validator", property(lambda self: None))
        patch.setattr(Stack, "requires_remote_server", property(lambda self: False))
        try:
            yield options, captured
        finally:
            client.activate_stack(LOCAL_STACK)


def ensure_model_stage(client, model: dict) -> None:
    """A config linked to a model stage (batch: `version: production`) needs that version to exist, as it
    would on a cluster after a training run; the throw-away store has none."""
    from zenml.enums import ModelStages

    if model.get("version") not in ModelStages.values():
        return
    try:
        client.get_model_version(model["name"], model["version"])
    except KeyError:
        version = client.create_model_version(model_name_or_id=client.create_model(name=model["name"]).id,
                                              name="compile-test")
        client.update_model_version(model_name_or_id=model["name"], version_name_or_id=version.id,
                                    stage=model["version"])


COMPILED = {}  # name -> what compile_pipeline returned: each pipeline is compiled once per test session


def compile_pipeline(name, kubeflow, client):
    """Compile `name` with its default config; returns (spec, snapshot, [(image, build context archive)])."""
    import importlib

    if name in COMPILED:
        return COMPILED[name]
    options, captured = kubeflow
    module, function, config = run.PIPELINES[name]
    ensure_model_stage(client, yaml.safe_load((PROJECT_ROOT / config).read_text()).get("model") or {})
    captured.clear()
    captured["builds"] = []
    pipeline = getattr(importlib.import_module(module), function)
    pipeline.with_options(config_path=str(PROJECT_ROOT / config), **options)()
    COMPILED[name] = captured["spec"], captured["snapshot"], list(captured["builds"])
    return COMPILED[name]


def kfp_name(step: str) -> str:
    return step.replace("_", "-")


@pytest.mark.parametrize("name", BUILT)
def test_pipeline_compiles_to_the_spec_a_cluster_runs(name, kubeflow, clean_zenml_client):
    spec, snapshot, builds = compile_pipeline(name, kubeflow, clean_zenml_client)

    # One task per step, each waiting for exactly its upstream steps (ZenML's DAG of the pipeline).
    steps = snapshot.step_configurations
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(kfp_name(step) for step in steps)
    for step, configuration in steps.items():
        task = tasks[kfp_name(step)]
        assert task["taskInfo"]["name"] == step
        assert sorted(task.get("dependentTasks", [])) == sorted(map(kfp_name, configuration.spec.upstream_steps))
    assert topological_order(tasks)  # no cycle: Kubeflow can schedule it

    # Every task runs ZenML's step entrypoint for its step, in the image built for this run.
    assert len(builds) == 1
    image, archive = builds[0]
    assert image.startswith(ENV["RECSYS_CONTAINER_REGISTRY"] + "/")
    executors = spec["deploymentSpec"]["executors"]
    for step in steps:
        component = spec["components"][tasks[kfp_name(step)]["componentRef"]["name"]]
        container = executors[component["executorLabel"]]["container"]
        assert container["image"] == image
        assert container["command"] == ["python", "-m", "zenml.entrypoints.entrypoint"]
        assert container["args"][container["args"].index("--step_name") + 1] == step
        env = {item["name"]: item["value"] for item in container["env"]}
        assert env["TF_USE_LEGACY_KERAS"] == "1" and env["RECSYS_STATE_ROOT"] == STATE_ROOT
        resources = container.get("resources", {})
        if step in STEP_RESOURCES:  # requests (and the memory limit), in Kubernetes quantities
            wanted = STEP_RESOURCES[step]
            gib = int(re.fullmatch(r"(\d+)GiB", wanted["memory"]).group(1))
            memory = f"{gib * 1024}Mi"
            assert resources["resourceCpuRequest"] == f"{wanted['cpu_count'] * 1000}m"
            assert resources["resourceMemoryRequest"] == resources["resourceMemoryLimit"] == memory
        else:
            assert not resources

    # The image: ZenML's, plus Java (the Spark feature engine), requirements.txt as pinned with the gs://
    # filesystem, and the code.
    with tarfile.open(archive) as tar:
        files = set(tar.getnames())
        dockerfile = tar.extractfile("Dockerfile").read().decode()
        requirements = tar.extractfile(".zenml_user_requirements").read().decode()
    installs = [line for line in dockerfile.splitlines() if "apt-get install" in line]
    assert installs and all(f"'{package}'" in installs[0] for package in APT_PACKAGES)
    assert requirements.split() == requirement_lines(PROJECT_ROOT / "requirements.txt") + STORE_PACKAGES["gcp"]
    assert ".zenml_stack_integration_requirements" not in files  # ZenML's unpinned lists stay out
    assert {"run.py", "feature_repo/feature_store.yaml", "stacks/kubeflow_orchestrator.py", "steps/locations.py",
            module_file(run.PIPELINES[name][0])} <= files
    assert not [f for f in files if f.split("/")[0] in KEPT_OUT]
    assert {f for f in files if f.startswith(ZENML_MARKER + "/")} <= {f"{ZENML_MARKER}/config.yaml"}


def module_file(module: str) -> str:
    return module.replace(".", "/") + ".py"


def topological_order(tasks: dict) -> list:
    order, done = [], set()
    while len(order) < len(tasks):
        ready = sorted(t for t, spec in tasks.items() if t not in done and set(spec.get("dependentTasks", [])) <= done)
        if not ready:
            return []
        order += ready
        done |= set(ready)
    return order


def test_dockerignore_keeps_state_and_tool_homes_out(tmp_path):
    """ZenML's own build context over a directory that has each of them (the checkout may not). `.zen`,
    ZenML's repository marker (active stack and project ids), is put back by ZenML whatever the file says."""
    from zenml.image_builders import BuildContext

    for name in (*KEPT_OUT, ZENML_MARKER, "steps", "tests", ".git"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "file.py").write_text("x = 1\n")
    context = BuildContext(root=str(tmp_path), dockerignore_file=str(PROJECT_ROOT / ".dockerignore"))
    files = {name for name, path in context.get_files().items() if Path(path).is_file()}
    assert files == {"steps/file.py", f"{ZENML_MARKER}/file.py"}


def test_readmes_show_the_compiled_train_task_list(kubeflow, clean_zenml_client):
    """The task list printed in README.md and stacks/README.md is the compiled train pipeline's."""
    spec, _, _ = compile_pipeline("train", kubeflow, clean_zenml_client)
    tasks = spec["root"]["dag"]["tasks"]
    compiled = [f"{task}  <- {', '.join(sorted(tasks[task].get('dependentTasks', []))) or '(start)'}"
                for task in topological_order(tasks)]
    for readme in ("README.md", "stacks/README.md"):
        text = (PROJECT_ROOT / readme).read_text()
        block = text.split("<!-- train-kfp-tasks -->", 2)
        assert len(block) == 3, f"{readme} lacks the <!-- train-kfp-tasks --> block"
        shown = [line.strip() for line in block[1].splitlines() if "<-" in line]
        assert shown == compiled, f"{readme} is out of date; the compiled task list is:\n" + "\n".join(compiled)


def test_the_scheduled_loop_reaches_kubeflow_as_a_recurring_run(kubeflow, clean_zenml_client):
    """configs/retrain_scheduled.yaml: the retrain pipeline compiles with its cron schedule attached (what
    the orchestrator turns into a KFP recurring run), the DAG the same as the unscheduled one's."""
    from pipelines.retrain import retrain_pipeline

    options, captured = kubeflow
    plain, _, _ = compile_pipeline("retrain", kubeflow, clean_zenml_client)
    captured.clear()
    captured["builds"] = []
    retrain_pipeline.with_options(config_path=str(PROJECT_ROOT / "configs" / "retrain_scheduled.yaml"), **options)()
    schedule = captured["snapshot"].schedule
    assert schedule is not None and schedule.cron_expression == "0 3 * * *"
    assert sorted(captured["spec"]["root"]["dag"]["tasks"]) == sorted(plain["root"]["dag"]["tasks"])
