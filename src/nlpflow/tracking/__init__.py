"""The MLflow adapter: the only package that imports mlflow (nlpflow.tracking.tracker.Tracker).

from nlpflow.tracking.tracker import Tracker
"""

# The modules outside nlpflow.tracking that import mlflow, each because it IS MLflow's model
# format or server, which no adapter can stand between:
MLFLOW_MODEL_FORMAT = {
    "nlpflow.serving.pyfunc": "the PythonModel class shipped inside every registered model",
    "nlpflow.serving.pyfunc_entry": "MLflow's models-from-code entry file (calls set_model)",
    "nlpflow.serving.app": "wraps MLflow's scoring server behind nlpflow's request guard",
}
