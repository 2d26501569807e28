"""ZenML materializers for the recsys model objects.

`RecsysModelMaterializer` serves the classes that restore themselves from their own directory
(TwoTowerModel, AnnIndex, Recommender: `obj.save(directory)`, `Cls.load(directory)`), so an artifact is
exactly the files a model bundle holds: no pickle, and it opens without ZenML. It is duck-typed on that
protocol instead of listing the classes, so importing it imports no model module (nor TensorFlow). Steps
attach it with `output_materializers=`; ZenML records it with the artifact, so downstream steps and
`Client().get_artifact_version(...).load()` use it too.

`InRunPickleMaterializer` is for the parts that cannot restore themselves yet (CandidateGenerator.load and
RankingModel.load also need the catalogue): they only travel between the steps of one run.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.materializers.cloudpickle_materializer import CloudpickleMaterializer
from zenml.utils import io_utils

MODEL_DIR = "model"


def has_save_load(data_type: type) -> bool:
    """Whether instances persist with `save(directory)` and the class restores them with `load(directory)`."""
    return callable(getattr(data_type, "save", None)) and callable(getattr(data_type, "load", None))


class RecsysModelMaterializer(BaseMaterializer):
    """Stores an object through its own save(dir) / load(dir), copied to and from the artifact store."""

    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL
    # Not registered for any type: the protocol check below replaces the ASSOCIATED_TYPES lookup, and the
    # steps choose this materializer explicitly.
    SKIP_REGISTRATION: ClassVar[bool] = True

    @classmethod
    def can_save_type(cls, data_type: type) -> bool:
        return has_save_load(data_type)

    @classmethod
    def can_load_type(cls, data_type: type) -> bool:
        return has_save_load(data_type)

    def save(self, data: Any) -> None:
        # Write locally first: model code uses plain file APIs, the artifact store may be remote.
        with self.get_temporary_directory(delete_at_exit=True) as tmp:
            local = os.path.join(tmp, MODEL_DIR)
            data.save(local)
            io_utils.copy_dir(local, os.path.join(self.uri, MODEL_DIR))

    def load(self, data_type: type) -> Any:
        # The local copy lives until the step ends: a loaded model may still read its files lazily.
        with self.get_temporary_directory(delete_at_exit=False) as tmp:
            local = os.path.join(tmp, MODEL_DIR)
            io_utils.copy_dir(os.path.join(self.uri, MODEL_DIR), local)
            return data_type.load(local)

    def extract_metadata(self, data: Any) -> dict:
        version = getattr(data, "version", None)
        return {"class": f"{type(data).__module__}.{type(data).__qualname__}",
                **({"version": str(version)} if version else {})}


class InRunPickleMaterializer(CloudpickleMaterializer):
    """Cloudpickle, chosen on purpose (so ZenML's "no materializer registered" warning does not apply) for
    intermediate objects read back by later steps of the same run, with the same code and Python."""

    SKIP_REGISTRATION: ClassVar[bool] = True  # never the default for `object`
