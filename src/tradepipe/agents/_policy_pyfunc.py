"""Models-from-code entry of the trading policy pyfunc, logged as ``python_model=policy.PYFUNC_CODE``.

MLflow copies this file into the logged model and runs it when the model is loaded: the model is then built from
the installed tradepipe's ``TradingPolicyModel`` (no pickled Python object in the model).
"""

from mlflow.models import set_model

from tradepipe.agents.policy import TradingPolicyModel

set_model(TradingPolicyModel())
