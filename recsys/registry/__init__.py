"""recsys.registry: the versioned model bundle, its MLflow logging/registration/promotion, the promotion gate.

`bundle` (save/load the one directory that batch inference, MLflow and the service share), `mlflow_registry`
(log a run, register the bundle, move aliases, download a promoted version) and `gate` (the quality gate a
recommender passes before it is registered). Framework-free: pipeline steps and the service call it.
"""
