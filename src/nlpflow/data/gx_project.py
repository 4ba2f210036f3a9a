"""The file-backed Great Expectations project (`gx/` in the repository).

Version-controlled: `great_expectations.yml` (the datasource), the suite under `expectations/`,
the validation definition and the checkpoint. nlpflow writes the suite from params; when the
params change, the suite file changes with them and shows up in `git diff`. Expectations a user
adds to the suite by hand (without nlpflow's `nlpflow_check` meta key) are kept.

Per-run output (validation results) goes to the run folder named by the `${nlpflow_run_dir}`
variable, never into `gx/`, so each run's folder holds that run's results only.

No Data Docs site is built. GX 1.x's Data Docs templates load jQuery, Bootstrap, bootstrap-table,
Vega and Font Awesome from CDNs (and a logo from GX's S3 bucket, tagged with the project's id):
offline the index page, drawn by bootstrap-table, is empty and the validation pages are
unstyled, and MLflow's artifact viewer, a sandboxed iframe that runs no scripts, shows them
blank. Making them self-contained would mean vendoring those libraries, which no installed
package ships. nlpflow.data.validation_report writes one self-contained page from the same results.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

SUITE = "nlpflow_text_classification"  # the default NLP task's suite (suite_name)
DATASOURCE, ASSET, BATCH = "gathered", "rows", "all_splits"
DEFINITION, CHECKPOINT = "gathered_data", "nlpflow_validate"
DATA_DOCS_ACTION = "update_data_docs"  # what checkpoints made by older nlpflow versions hold
CHECK_KEY = "nlpflow_check"  # meta key marking the expectations nlpflow writes

_CONFIG = """\
# Great Expectations project of nlpflow: written by nlpflow, kept under version control.
# The suite (expectations/) is rebuilt from params.yaml's `validate` section; expectations
# you add by hand are kept. Results of each run go to ${nlpflow_run_dir} (reports/validation/),
# not here, beside report.html, nlpflow's own report (GX Data Docs need CDN assets).
config_version: 4
progress_bars:
  globally: false
stores:
  expectations_store:
    class_name: ExpectationsStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: expectations/
  validation_results_store:
    class_name: ValidationResultsStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: ${nlpflow_run_dir}/results/
  checkpoint_store:
    class_name: CheckpointStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      suppress_store_backend_id: true
      base_directory: checkpoints/
  validation_definition_store:
    class_name: ValidationDefinitionStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      suppress_store_backend_id: true
      base_directory: validation_definitions/
expectations_store_name: expectations_store
validation_results_store_name: validation_results_store
checkpoint_store_name: checkpoint_store
data_docs_sites: {}
"""


def open_project(gx_dir: Path, run_dir: Path) -> Any:
    """The file-backed context in `gx_dir` (scaffolded on first use), writing to `run_dir`."""
    import great_expectations as gx

    import nlpflow.data.expectations  # noqa: F401  registers nlpflow's custom expectations with GX

    config = gx_dir / "great_expectations.yml"
    if not config.exists():
        gx_dir.mkdir(parents=True, exist_ok=True)
        config.write_text(_CONFIG)
    run_dir.mkdir(parents=True, exist_ok=True)
    return gx.get_context(
        mode="file",
        context_root_dir=str(gx_dir),
        runtime_environment={"nlpflow_run_dir": str(run_dir.resolve())},
    )


def _signature(expectations: list[Any]) -> list[dict[str, Any]]:
    """What makes two suites equal: types, kwargs, meta, descriptions; not GX's random ids."""
    out = []
    for exp in expectations:
        config = exp.configuration.to_json_dict()
        config.pop("id", None)
        out.append(config)
    return out


def suite_name(task: str) -> str:
    """The GX suite of NLP task `task`: one per task, so switching a project's task keeps each
    task's suite (and the expectations a user added to it)."""
    return "nlpflow_" + task.replace("-", "_")


def sync_suite(context: Any, expectations: list[Any], name: str = SUITE) -> tuple[Any, bool]:
    """Make the stored suite `name` hold `expectations` (plus the user's own); True when it
    changed."""
    import great_expectations as gx

    stored = _stored(lambda: context.suites.get(name))
    own = [e for e in (stored.expectations if stored else []) if CHECK_KEY not in (e.meta or {})]
    wanted = expectations + [_copy(e) for e in own]
    if stored is not None and _signature(stored.expectations) == _signature(wanted):
        return stored, False
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=wanted))
    return suite, True


def _copy(expectation: Any) -> Any:
    """A user's expectation without its id, so it can join the rebuilt suite."""
    copied = copy.copy(expectation)  # GX models are pydantic v1: no model_copy
    copied.id = None
    return copied


def _stored(get: Any) -> Any:
    """What a GX store lookup `get()` returns, or None when the project does not hold it yet."""
    from great_expectations.exceptions import DataContextError

    try:
        return get()
    except (KeyError, LookupError, ValueError, IndexError, DataContextError):
        return None


def checkpoint(context: Any, suite: Any, result_format: dict[str, Any]) -> Any:
    """The stored checkpoint of `suite` (datasource, definition, checkpoint made when missing
    or stale): one per suite, so a project that runs two NLP tasks keeps both as they are.
    A user's own actions (e.g. a Slack notification) are kept; a Data Docs action is dropped."""
    import great_expectations as gx

    # the default task's keep the names they had before there were two
    own = suite.name != SUITE
    definition_name = f"{suite.name}_data" if own else DEFINITION
    checkpoint_name = f"{suite.name}_validate" if own else CHECKPOINT

    batch = _stored(
        lambda: context.data_sources.get(DATASOURCE).get_asset(ASSET).get_batch_definition(BATCH)
    )
    if batch is None:
        source = context.data_sources.add_or_update_pandas(DATASOURCE)
        batch = source.add_dataframe_asset(ASSET).add_batch_definition_whole_dataframe(BATCH)
    definition = _stored(lambda: context.validation_definitions.get(definition_name))
    if definition is None or definition.suite.id != suite.id or definition.data.id != batch.id:
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=definition_name, data=batch, suite=suite)
        )
    stored = _stored(lambda: context.checkpoints.get(checkpoint_name))
    actions = list(stored.actions) if stored is not None else []
    kept = [a for a in actions if a.type != DATA_DOCS_ACTION]
    wanted = gx.Checkpoint(
        name=checkpoint_name,
        validation_definitions=[definition],
        actions=kept,
        result_format=result_format,
    )
    if (
        stored is not None
        and stored.result_format == wanted.result_format
        and ([d.id for d in stored.validation_definitions[:1]] == [definition.id])
        and len(kept) == len(actions)
    ):
        return stored
    return context.checkpoints.add_or_update(wanted)
