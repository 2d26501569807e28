"""Step: `bentoml containerize` the bento that passed its smoke test, when a container engine is here;
otherwise skip it, saying so and how to build the image elsewhere (the manifests name that image)."""

from typing import Annotated, Any, Dict

from zenml import log_metadata, step
from zenml.logger import get_logger

from bentos.build import containerize, ensure
from recsys.storage import locate
from steps.names import CONTAINER_IMAGE

logger = get_logger(__name__)


@step(enable_cache=False)
def containerize_bento(bento: Dict[str, Any], smoke_report: Dict[str, Any], image_repository: str,
                       backend: str = "docker") -> Annotated[Dict[str, Any], CONTAINER_IMAGE]:
    """`backend`: BentoML's container builder (docker, podman, buildah, buildx, nerdctl, buildctl)."""
    image = f"{image_repository}:{bento['bento_version']}"
    tag = ensure(bento["bento_tag"], locate(bento["archive"], None).pull())
    result = {"bento_tag": tag, **containerize(tag, image, backend)}
    result["summary"] = f"image {image}: {'built' if result['built'] else 'not built'} ({result['reason']})"
    if result["built"]:
        logger.info("image %s built from %s", image, tag)
    else:
        logger.warning("containerize skipped: %s. To build the image where an engine runs: bentoml import %s && "
                       "bentoml containerize %s -t %s", result["reason"], bento["archive"], tag, image)
    log_metadata({"container_image": result})
    return result
