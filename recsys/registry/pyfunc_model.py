"""The model file MLflow logs for the registered model (MLflow's "models from code"): it names the pyfunc
object; the class and its explanation live in recsys.registry.pyfunc."""

from mlflow.models import set_model

from recsys.registry.pyfunc import RecommenderModel

set_model(RecommenderModel())
