"""The registered model's entry point, as MLflow "models from code" loads it.

`nlpflow.release.publish` logs this file as the pyfunc's python_model: MLflow copies it into the
model and runs it at load time, after putting the model's own copy of nlpflow (its code
paths) on sys.path. So the model holds source code, not a cloudpickle of a class, and loads
with any cloudpickle version (MLflow's docs recommend this over pickling a PythonModel).

Not meant to be imported: running it is what declares the model.
"""

from mlflow.models import set_model

from nlpflow.serving.pyfunc import TextClassifierModel

set_model(TextClassifierModel())
