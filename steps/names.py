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
DATA_SUMMARY = "data_summary"  # HTML: event mix, activity long tail, the split over time

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
PRODUCTION_RECOMMENDER = "production_recommender"  # the evaluated one refit on all of its data
DATA_WINDOW = "data_window"  # first / last interaction time the registered model learnt from

# evaluation and promotion
EVALUATION_METRICS = "evaluation_metrics"
EVALUATION_REPORT = "evaluation_report"  # HTML: metrics vs baselines, segments, scores, importance, samples
GATE_PASSED = "gate_passed"
GATE_REPORT = "gate_report"  # HTML: each gate check's value beside its threshold
REGISTRATION = "registration"

# inference and monitoring: the production model and what it was registered with
PROMOTED_RECOMMENDER = "promoted_recommender"
PROMOTED_INFO = "promoted_info"
BATCH_RECOMMENDATIONS = "batch_recommendations"

# monitoring loop: the windows, the verdict and its report, the decision, the challenger, the comparison
REFERENCE_WINDOW = "reference_interactions"
BEFORE_WINDOW = "interactions_before_window"
CURRENT_WINDOW = "window_interactions"
WINDOW_ITEMS = "window_items"
WINDOW_USERS = "window_users"
WINDOW = "window"
DRIFT_VERDICT = "drift_verdict"
DRIFT_REPORT = "drift_report"
DRIFT_SNAPSHOTS = "drift_snapshots"
RETRAIN_DECISION = "retrain_decision"
CHALLENGER = "challenger"
CHALLENGER_INFO = "challenger_info"
COMPARISON = "champion_vs_challenger"
PROMOTION = "promotion"
ROLLBACK = "rollback"

# deployment: the version being deployed, its bento, the smoke test, what was recorded, the manifests, the
# image, the canary; and the canary's readout decision and what it led to
DEPLOY_TARGET = "deploy_target"
BENTO = "bento"
SMOKE_REPORT = "smoke_report"
DEPLOYMENT = "deployment"
MANIFESTS = "manifests"
CONTAINER_IMAGE = "container_image"
CANARY = "canary"
CANARY_DECISION = "canary_decision"
CANARY_RESULT = "canary_result"
