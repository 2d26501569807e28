"""Public names of the artifacts the pipelines produce: one place, because they are an interface.

Other pipelines, notebooks and the service fetch artifacts by these names, e.g.
`Client().get_artifact_version(names.RECOMMENDER).load()`; steps use them in `Annotated[T, NAME]`.
"""

# data: raw tables as loaded, validated tables (typed, sorted, checked), the temporal split
RAW_INTERACTIONS = "raw_interactions"
RAW_ITEMS = "raw_items"
RAW_USERS = "raw_users"
INTERACTIONS = "interactions"
ITEMS = "items"
USERS = "users"
TRAIN = "train_interactions"
VALID = "valid_interactions"
TEST = "test_interactions"

# features: the batch job's tables (summary), the applied Feast repo, the online store's materialization
FEATURE_TABLES = "feature_tables"
FEATURE_STORE = "feature_store"
FEATURE_MATERIALIZATION = "feature_materialization"

# training: retrieval model and index, candidate generation, ranker, the assembled recommender
TWO_TOWER = "two_tower"
ANN_INDEX = "ann_index"
CANDIDATE_GENERATOR = "candidate_generator"
CANDIDATE_RECALL = "candidate_recall"
RANKER = "ranker"
FEATURE_IMPORTANCE = "feature_importance"
RECOMMENDER = "recommender"

# evaluation and promotion
EVALUATION_METRICS = "evaluation_metrics"
EVALUATION_REPORT = "evaluation_report"
GATE_PASSED = "gate_passed"
REGISTRATION = "registration"

# inference
PROMOTED_RECOMMENDER = "promoted_recommender"
BATCH_RECOMMENDATIONS = "batch_recommendations"
