"""Texts with labelled character spans, parsed from spaCy/Prodigy JSONL and Label Studio JSON.

    records, notes = parse_spans_jsonl(text, source="data/train.jsonl")
    records, notes = parse_label_studio(text, source="export.json")

A record is one text, its spans and where it came from; tokenizing and aligning are the
caller's (nlpflow.data.ner.align). A file whose layout is wrong (not JSON, no text, a span
without an end) stops at the first such record; problems of single spans (more than one
label) travel with the record so the caller lists them with the alignment's. `notes` say
what was left out on purpose: Prodigy's rejected and ignored answers, Label Studio tasks with
no annotation, and which annotation was used where a task has several.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from nlpflow.data.ner.align import Span
from nlpflow.errors import DataSourceError

SKIPPED_ANSWERS = ("reject", "ignore")  # Prodigy: the annotator said no, or skipped it


class SpanRecord(NamedTuple):
    """One text and its spans; `line` is its 1-based line (JSONL) or task number (JSON)."""

    text: str
    spans: list[Span]
    line: int
    where: str  # file:line, or "file task N (id I)" for error messages
    problems: list[str]


def parse_spans_jsonl(text: str, *, source: str) -> tuple[list[SpanRecord], list[str]]:
    """One record per line {"text": ..., "spans": [{"start", "end", "label"}, ...]}; the
    spans may be called "entities" and written as [start, end, label] (spaCy's)."""
    records: list[SpanRecord] = []
    skipped: list[int] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        where = f"{source}:{number}"
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataSourceError(
                f"{where}: not JSON ({exc.msg}, column {exc.colno}); each line of a .jsonl file "
                'is one object: {"text": "...", "spans": [{"start": 0, "end": 5, "label": "X"}]}.'
            ) from None
        if not isinstance(obj, dict):
            raise DataSourceError(
                f'{where}: a {type(obj).__name__}, not an object {{"text": ...}}.'
            )
        if obj.get("answer") in SKIPPED_ANSWERS:
            skipped.append(number)
            continue
        spans = _jsonl_spans(obj, where)
        records.append(SpanRecord(_text(obj, where, '"text"'), spans, number, where, []))
    notes = (
        [f"{source}: left out {len(skipped)} record(s) answered reject/ignore: lines {skipped}"]
        if skipped
        else []
    )
    return records, notes


def _jsonl_spans(obj: dict[str, Any], where: str) -> list[Span]:
    if "spans" in obj and "entities" in obj:
        raise DataSourceError(f'{where}: has both "spans" and "entities": keep one of them.')
    raw = obj.get("spans", obj.get("entities"))
    if not isinstance(raw, list):
        raise DataSourceError(
            f'{where}: no "spans" (or "entities") list; write "spans": [] for a text without '
            "entities, so a misnamed key is not read as a text without entities."
        )
    spans: list[Span] = []
    for item in raw:
        if isinstance(item, list | tuple) and len(item) == 3:  # spaCy: [start, end, label]
            (start, end, label), stated = item, None
        elif isinstance(item, dict) and {"start", "end", "label"} <= item.keys():
            start, end, label, stated = item["start"], item["end"], item["label"], item.get("text")
        else:
            raise DataSourceError(
                f'{where}: span {item!r} is not {{"start": int, "end": int, "label": str}} '
                "or [start, end, label]."
            )
        spans.append(_span(start, end, label, stated, where))
    return spans


def parse_label_studio(text: str, *, source: str) -> tuple[list[SpanRecord], list[str]]:
    """The tasks of a Label Studio JSON export: data.text, and the labels results of each
    task's first annotation not cancelled (older exports call them completions)."""
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataSourceError(
            f"{source}:{exc.lineno}: not JSON ({exc.msg}, column {exc.colno}); export the "
            "project from Label Studio as JSON (a list of tasks)."
        ) from None
    if not isinstance(tasks, list):
        raise DataSourceError(
            f"{source}: a JSON {type(tasks).__name__}, not a list of tasks: export the project "
            "from Label Studio as JSON (not JSON-MIN or a single task)."
        )
    records: list[SpanRecord] = []
    notes: list[str] = []
    for number, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            raise DataSourceError(f"{source} task {number}: a {type(task).__name__}, not a task.")
        ident = f" (id {task['id']})" if "id" in task else ""
        where = f"{source} task {number}{ident}"
        annotations = task.get("annotations", task.get("completions")) or []
        kept = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        if not kept:
            why = f"all {len(annotations)} cancelled" if annotations else "none yet"
            notes.append(f"{where}: left out, no annotation ({why})")
            continue
        chosen = kept[0]
        if len(annotations) > 1:
            notes.append(
                f"{where}: used annotation {chosen.get('id', '?')}, the first not cancelled "
                f"of {len(annotations)}"
            )
        data = task.get("data")
        if not isinstance(data, dict):
            raise DataSourceError(f"{where}: no data object: is this a Label Studio export?")
        spans, problems = _studio_spans(chosen, where)
        records.append(SpanRecord(_text(data, where, "data.text"), spans, number, where, problems))
    return records, notes


def _studio_spans(annotation: dict[str, Any], where: str) -> tuple[list[Span], list[str]]:
    spans: list[Span] = []
    problems: list[str] = []
    for result in annotation.get("result") or []:
        value = result.get("value") if isinstance(result, dict) else None
        if not isinstance(value, dict) or "labels" not in value:
            continue  # relations, choices, text areas: not entity spans
        if "startOffset" in value:
            raise DataSourceError(
                f"{where}: a HyperText span (XPath offsets): nlpflow reads character offsets "
                "of plain text; label the text with a <Labels> on a <Text> tag."
            )
        labels = value["labels"]
        if not isinstance(labels, list) or len(labels) != 1:
            problems.append(
                f"span [{value.get('start')}, {value.get('end')}) has labels {labels!r}: "
                "give each span one label (BIO holds one type per token)"
            )
            continue
        if "start" not in value or "end" not in value:
            raise DataSourceError(f"{where}: a labels result without start/end: {value!r}.")
        spans.append(_span(value["start"], value["end"], labels[0], value.get("text"), where))
    return spans, problems


def _span(start: Any, end: Any, label: Any, stated: Any, where: str) -> Span:
    ints = all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end))
    if not ints or not isinstance(label, str) or not isinstance(stated, str | None):
        raise DataSourceError(
            f"{where}: span ({start!r}, {end!r}, {label!r}): start and end are character "
            "offsets (integers), the label a string."
        )
    return Span(start, end, label, stated)


def _text(obj: dict[str, Any], where: str, name: str) -> str:
    value = obj.get("text")
    if not isinstance(value, str):
        keys = ", ".join(sorted(obj)) or "none"
        raise DataSourceError(
            f"{where}: {name} is {'missing' if value is None else type(value).__name__}, not a "
            f"string (keys: {keys}); put the text under {name}."
        )
    return value
