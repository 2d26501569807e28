"""The materializers round-trip real recsys objects through a (local) artifact directory."""

from recsys.serving.recommender import Recommender
from steps.materializers import InRunPickleMaterializer, RecsysModelMaterializer, has_save_load


def test_recommender_round_trip(tiny_recommender, tiny_dataset, tmp_path):
    materializer = RecsysModelMaterializer(str(tmp_path / "artifact"))
    assert materializer.can_save_type(Recommender) and not materializer.can_save_type(dict)
    tiny_recommender.version = "v7"
    materializer.save(tiny_recommender)
    assert (tmp_path / "artifact" / "model" / "recommender.json").is_file()
    loaded = materializer.load(Recommender)
    users = list(tiny_dataset.users.user_id[:5])
    assert loaded.version == "v7"
    assert loaded.recommend_batch(users, 5).equals(tiny_recommender.recommend_batch(users, 5))
    assert materializer.extract_metadata(loaded) == {"class": "recsys.serving.recommender.Recommender",
                                                     "version": "v7"}


def test_neither_materializer_is_registered_as_a_default():
    """Both are chosen explicitly per step output; registering InRunPickleMaterializer would make it the
    fallback for every unknown type."""
    from zenml.materializers.materializer_registry import materializer_registry

    registered = set(materializer_registry.materializer_types.values())
    assert RecsysModelMaterializer not in registered and InRunPickleMaterializer not in registered
    assert has_save_load(Recommender) and not has_save_load(dict)
