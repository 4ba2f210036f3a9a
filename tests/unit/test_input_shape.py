"""The shaping a registered version records (nlpflow.serving.shaping): gather's columns,
joined fields and label rewriting, round-tripped through a model_config, overridden by the
inference params, and the params' refusals.

    .venv/bin/python -m pytest tests/unit/test_input_shape.py -q
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from nlpflow.config.params import DataParams
from nlpflow.config.sections.inference import InferenceParams
from nlpflow.serving.shaping import InputShape


def test_the_recorded_shape_round_trips_and_overrides_apply() -> None:
    data = DataParams(
        columns=["label", "title", "description"], text_column=["title", "description"],
        label_pattern=r"^(\d)", label_map={"1": "world"},
    )  # fmt: skip
    shape = InputShape.from_config({"input": InputShape.from_data(data).to_config()})
    assert shape == InputShape.from_data(data)
    assert shape.text_columns == ("title", "description") and shape.text_name == "title+description"
    frame = pd.DataFrame(
        {"title": ["Oil up", None], "description": ["again", "rates fall"], "label": ["1x", "2"]}
    )
    # a missing field is left out, as gather's join leaves it out
    assert shape.texts(frame) == ["Oil up again", "rates fall"]
    labels = shape.labels(frame)
    assert labels is not None and labels.tolist() == ["world", "2"]  # pattern, then map
    assert shape.overridden(text_column="title", columns=[]) == InputShape(
        text_columns=("title",), columns=None, label_column="label",
        label_pattern=r"^(\d)", label_map={"1": "world"},
    )  # fmt: skip
    # a version registered before shaping was recorded reads one text column
    assert InputShape.from_config({"max_chars": 10}) == InputShape()


def test_batch_and_gather_join_fields_with_one_function() -> None:
    from nlpflow.data.local_source import _select
    from nlpflow.data.text import join_fields

    frame = pd.DataFrame({"title": ["a", None, 3], "body": ["b", "c", None], "label": list("xyz")})
    gathered = _select(frame, Path("f.csv"),
                       DataParams(text_column=["title", "body"]))["text"].tolist()  # fmt: skip
    shaped = InputShape(text_columns=("title", "body")).texts(frame)
    assert gathered == shaped == ["a b", "c", "3"]
    assert join_fields([None, float("nan")]) is None


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"text_column": []}, "text_column is empty"),
        ({"text_column": ["body", "id"], "id_column": "id"}, "name the same column"),
        ({"source": "sqlite:///x.db", "table": "t", "columns": ["a"]}, "a database source"),
    ],
)
def test_inference_params_refuse_columns_that_cannot_work(
    values: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError) as error:
        InferenceParams(**values)  # type: ignore[arg-type]
    assert fragment in str(error.value)
