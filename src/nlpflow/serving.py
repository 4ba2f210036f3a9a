"""The registered model: an MLflow pyfunc that takes raw text.

It cleans text with the same TextPreprocessor (and the same params) the training data went
through, then predicts, so training and serving cannot drift apart.

Input: a DataFrame with a `text` column (or a list of strings).
Output: a DataFrame with `label`, `score` (its probability) and `proba_<label>` per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

MODEL_ARTIFACT = "model_dir"


def predict_frame(model: Any, cleaner: Any, texts: list[str]) -> pd.DataFrame:
    from nlpflow.models import predict_labels

    labels, proba = predict_labels(model, cleaner.transform(texts))
    frame = pd.DataFrame({"label": labels, "score": proba.max(axis=1).astype(float)})
    for i, name in enumerate(model.labels):
        frame[f"proba_{name}"] = proba[:, i].astype(float)
    return frame


def _texts(model_input: Any) -> list[str]:
    if isinstance(model_input, pd.DataFrame):
        column = "text" if "text" in model_input.columns else model_input.columns[0]
        return model_input[column].astype(str).tolist()
    if isinstance(model_input, pd.Series):
        return model_input.astype(str).tolist()
    if isinstance(model_input, str):
        return [model_input]
    return [str(t) for t in model_input]


class TextClassifierModel(PythonModel):
    def load_context(self, context: Any) -> None:
        from nlpflow.models import load_manifest, load_model
        from nlpflow.params import PreprocessParams
        from nlpflow.preprocess import TextPreprocessor

        folder = Path(context.artifacts[MODEL_ARTIFACT])
        self.model = load_model(folder)
        self.cleaner = TextPreprocessor(PreprocessParams(**load_manifest(folder)["preprocess"]))

    # No type hints here on purpose: MLflow reads them as an input schema and warns.
    def predict(self, context, model_input, params=None):
        return predict_frame(self.model, self.cleaner, _texts(model_input))
