"""Step: index the catalogue's item vectors for nearest-neighbour retrieval (exact or HNSW/IVF by size)."""

from typing import Annotated, Any, Dict, Optional

from zenml import step

from recsys.retrieval.index import AnnIndex
from recsys.retrieval.two_tower import TwoTowerModel
from steps.materializers import RecsysModelMaterializer
from steps.names import ANN_INDEX


@step(output_materializers=RecsysModelMaterializer)
def build_ann_index(two_tower: TwoTowerModel, params: Optional[Dict[str, Any]] = None,
                    ) -> Annotated[AnnIndex, ANN_INDEX]:
    """`params` go to AnnIndex.build (kind, exact_max_items, ...)."""
    return AnnIndex.build(two_tower.item_embeddings, two_tower.item_ids, **(params or {}))
