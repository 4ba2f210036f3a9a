"""topic-modeling's behavioural file: there is none. Behavioural tests state what a label or an
entity should be for a text; topics have no names to state that in, so a file is refused
before training rather than ignored."""

from collections.abc import Sequence
from pathlib import Path

from nlpflow.errors import ParamsError


def check_behavioural(path: Path, labels: Sequence[str]) -> None:
    raise ParamsError(
        f"evaluate.behavioural names {path}, but task topic-modeling has no behavioural tests "
        "(they state the label or entities a text should get; topics have no names to state). "
        "Set evaluate.behavioural: null."
    )
