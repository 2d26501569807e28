"""bentos: the BentoML service of the recommender and its framework-free helpers.

service.py is the only module that imports BentoML; settings (config surface), sources (where bundles come
from), slots (loading and hot reload), feedback (Kafka or in-place) and import_model (the BentoML model
store) are plain Python, unit-tested without a server.
"""
