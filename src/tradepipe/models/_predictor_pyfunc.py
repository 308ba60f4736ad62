"""Models-from-code entry of the predictor pyfunc, logged as ``python_model=predictor.PYFUNC_CODE``.

MLflow copies this file into the logged model and runs it when the model is loaded: the model is then built from
the installed tradepipe's ``PredictorModel`` (no pickled Python object in the model).
"""

from mlflow.models import set_model

from tradepipe.models.predictor import PredictorModel

set_model(PredictorModel())
