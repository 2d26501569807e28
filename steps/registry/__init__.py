"""Registry stage: bundle, log, register and promote a recommender that passed the quality gate."""

from steps.registry.register_model import register_model
from steps.registry.rollback_model import rollback_model

__all__ = ["register_model", "rollback_model"]
