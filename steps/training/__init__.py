"""Training stage: two-tower retrieval, its ANN index, candidate generation, the ranker, the Recommender."""

from steps.training.assemble_recommender import assemble_recommender
from steps.training.build_ann_index import build_ann_index
from steps.training.generate_candidates import generate_candidates
from steps.training.refit_recommender import refit_recommender
from steps.training.train_ranker import train_ranker
from steps.training.train_retrieval import train_retrieval

__all__ = ["train_retrieval", "build_ann_index", "generate_candidates", "train_ranker", "assemble_recommender",
           "refit_recommender"]
