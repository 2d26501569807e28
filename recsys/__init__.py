"""recsys: the framework-free core of the recommender.

Everything a pipeline step, a notebook, a Spark job or the BentoML service needs lives here, and nothing in
this package imports ZenML or BentoML: steps/ and bentos/ are thin adapters over it.
"""

__version__ = "0.1.0"
