"""Sub-phrases (issue 18): which texts lie, whole words after normalisation, inside another
(nlpflow.data.subphrase), and data.split.group_subphrases, which keeps a phrase in the split of
the sentence holding it. SST-2's train file holds its sentences' phrases as rows of their own;
a split that grouped only equal texts scored validation 0.923 where dev gave 0.826.

    .venv/bin/python -m pytest tests/unit/test_subphrases.py -q
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nlpflow.config.params import DataParams, SplitParams
from nlpflow.data.splits import split_stratified
from nlpflow.data.subphrase import contained_in, first_container

ADJECTIVES = {"pos": ("good", "moving", "fresh"), "neg": ("dull", "flat", "stale")}


def sst2_like(sentences: int = 60) -> pd.DataFrame:
    """Sentences, each followed by three of its phrases (SST-2's layout), plus "the film",
    a two-word phrase of every sentence. Labels alternate, so both halves are the same size."""
    rows: list[tuple[str, str, int]] = []  # text, label, the sentence it comes from
    for i in range(sentences):
        label = ("pos", "neg")[i % 2]
        adj = ADJECTIVES[label][i % 3]
        rows.append((f"the film {i} is {adj} and the cast {i} is {adj} too", label, i))
        rows.append((f"film {i} is {adj}", label, i))
        rows.append((f"The cast {i} is {adj} too!", label, i))  # up to case and punctuation
        rows.append((f"cast {i}", label, i))
    rows.append(("the film", "pos", 0))
    return pd.DataFrame(rows, columns=["text", "label", "sentence"])


def sentence_rows(frame: pd.DataFrame) -> pd.Index:
    return frame.index[(frame.index % 4 == 0) & (frame.index < len(frame) - 1)]


def test_contained_means_whole_words_after_normalisation() -> None:
    train = ["The film is NOT good, at all.", "a goodness of heart"]
    queries = ["not good at all", "film is not", "good", "goodness", "is good", None, "", "all the"]
    found = contained_in(queries, train, min_tokens=1)
    # "is good" is not a run of words in either; "all the" crosses the end of one text
    assert found.tolist() == [True, True, True, True, False, False, False, False]
    # fewer words than min_tokens are never flagged, even where found
    assert contained_in(queries, train, min_tokens=3).tolist() == [
        True, True, False, False, False, False, False, False,
    ]  # fmt: skip


def test_an_equal_text_counts_as_contained_but_never_as_its_own_container() -> None:
    assert contained_in(["The film is dull"], ["the film is dull!"], min_tokens=1).tolist() == [
        True
    ]
    texts = ["the film is dull", "film is dull", "the film is dull", "is dull", "a dull day"]
    # the first longer text holding each; equal texts are not containers of each other
    assert first_container(texts).tolist() == [-1, 0, -1, 0, -1]


def test_group_subphrases_puts_each_phrase_in_its_sentence_s_split() -> None:
    frame = sst2_like()
    split = split_stratified(frame, SplitParams(group_subphrases=True))["split"]
    sentence_split = split[sentence_rows(frame)].to_numpy()  # each sentence's own row
    phrases = frame.index[:-1]
    assert (split[phrases].to_numpy() == sentence_split[frame.loc[phrases, "sentence"]]).all()
    # "the film" lies in every sentence: it follows the first, not all (that would make one
    # group of all sixty)
    assert split.iloc[-1] == sentence_split[0]
    # stratified by label over the groups: 30 sentences a label, 20% test, 10% validation
    counts = pd.crosstab(frame.loc[sentence_rows(frame), "label"], sentence_split)
    assert counts.to_dict() == {
        "test": {"neg": 6, "pos": 6}, "train": {"neg": 21, "pos": 21},
        "validation": {"neg": 3, "pos": 3},
    }  # fmt: skip


def test_without_group_subphrases_phrases_land_apart_from_their_sentence() -> None:
    # why the option exists: grouping equal texts alone leaves phrases in other splits
    frame = sst2_like()
    split = split_stratified(frame, SplitParams(group_subphrases=False))["split"]
    sentence_split = split[sentence_rows(frame)].to_numpy()
    phrases = frame.index[:-1]
    apart = split[phrases].to_numpy() != sentence_split[frame.loc[phrases, "sentence"]]
    assert apart.sum() > 40


def test_group_subphrases_is_seeded() -> None:
    frame = sst2_like()
    first = split_stratified(frame, SplitParams(group_subphrases=True, seed=5))["split"]
    again = split_stratified(frame, SplitParams(group_subphrases=True, seed=5))["split"]
    other = split_stratified(frame, SplitParams(group_subphrases=True, seed=6))["split"]
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()


@pytest.mark.parametrize("layout", ["no splits", "train and test files", "no duplicates"])
def test_gather_in_chunks_groups_phrases_as_gather_in_memory(tmp_path: Path, layout: str) -> None:
    """The streaming path finds containers by one more read of the source: the same rows in
    the same splits, whether nlpflow splits it all, carves validation out of a source's train
    (containers among train rows only), or groups rows rather than normalised texts."""
    from nlpflow.config.params import RuntimeParams
    from nlpflow.data.gather import gather

    frame = sst2_like().drop(columns="sentence")
    frame.loc[7, "text"] = frame.loc[5, "text"]  # a repeat: grouped by group_duplicates
    source = tmp_path / "phrases.csv"
    if layout == "train and test files":
        source = tmp_path / "folder"
        source.mkdir()
        frame.iloc[:200].to_csv(source / "train.csv", index=False)
        frame.iloc[200:].to_csv(source / "test.csv", index=False)
    else:
        frame.to_csv(source, index=False)
    split = SplitParams(group_subphrases=True, group_duplicates=layout != "no duplicates")
    params = DataParams(source=str(source), split=split)
    memory = gather(source=source, dst=tmp_path / "memory", params=params)
    chunked = gather(source=source, dst=tmp_path / "chunks", params=params,
                     runtime=RuntimeParams(chunk_rows=50))  # fmt: skip
    assert chunked.streamed is not None and chunked.rows == memory.rows
    for name in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "chunks" / f"{name}.parquet"),
            pd.read_parquet(tmp_path / "memory" / f"{name}.parquet"),
        )
    # and the phrases did follow their sentences (not a vacuous equality)
    texts = {n: set(pd.read_parquet(tmp_path / "memory" / f"{n}.parquet")["text"])
             for n in ("train", "validation")}  # fmt: skip
    held = [t for t in texts["validation"] if t.startswith("the film ")]
    # "the film 12 is good and ..." -> its phrase row "film 12 is good"
    assert held and all(" ".join(t.split()[1:5]) in texts["validation"] for t in held)
