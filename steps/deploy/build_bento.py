"""Step: the model version -> BentoML model store -> bento (BentoML's Python API, bentofile.yaml's runtime)
-> one archive at a shared location.

The bundle is downloaded from MLflow into this process's cache, imported as the BentoML model
`<name>:<bundle version>-v<MLflow version>` (bentos/import_model.py), and packed into a bento built from
bentofile.yaml with `models` pinned to it (bentos/build.py); the bento's labels name the MLflow version. The archive
(`bentoml export`) is what later steps serve, containerize and record: `<bentos_dir>/<bento>-<version>.bento`,
shared as steps/locations.py says (each step may run in its own pod with its own BentoML home).
"""

from typing import Annotated, Any, Dict

from zenml import step
from zenml.logger import get_logger

from bentos.build import build, export
from bentos.import_model import import_bundle
from recsys.registry.mlflow_registry import download_version
from steps.locations import state_location
from steps.names import BENTO

logger = get_logger(__name__)


@step(enable_cache=False)  # writes the BentoML store and the archive
def build_bento(deploy_target: Dict[str, Any], download_dir: str = "data/mlflow/downloads",
                bentos_dir: str = "data/bentos") -> Annotated[Dict[str, Any], BENTO]:
    target = deploy_target
    cache = state_location(download_dir).local  # a cache of this process
    bundle = download_version(target["tracking_uri"], target["name"], target["version"], target["run_id"], cache)
    origin = {"mlflow_model": target["name"], "mlflow_version": target["version"]}
    # The MLflow version in the tag: two registered versions never share a BentoML model, even when their
    # bundles carry the same bundle version (a re-registered copy, a tampered one).
    model_tag = import_bundle(str(bundle), target["tracking_uri"], str(cache), target["name"],
                              labels={"source": "mlflow", "registry_version": target["version"]},
                              version=f"{target['bundle_version'] or 'bundle'}-v{target['version']}")
    bento_tag = build(model_tag, labels={**origin, "bundle_version": target["bundle_version"] or ""})
    archive = state_location(bentos_dir).child(f"{bento_tag.replace(':', '-')}.bento")
    if archive.local.exists():
        archive.local.unlink()
    export(bento_tag, archive.local)
    archive.push()
    logger.info("built bento %s with model %s (%s version %s) -> %s", bento_tag, model_tag, target["name"],
                target["version"], archive.shared)
    return {**origin, "bento_tag": bento_tag, "bento_version": bento_tag.split(":", 1)[1], "model_tag": model_tag,
            "archive": archive.shared}
