"""Which registered version a user means: the one resolver of model references.

    resolve_spec("nlpflow-support-tickets@champion", settings)   # nlpflow serve / predict / lineage
    resolve_model(tracker, name, alias="champion")          # batch inference
    resolve_model(tracker, name, version=3)

An alias is resolved to its version number once, so everything after works on one version even
if the alias moves meanwhile. One error policy for every caller: a model, alias or version the
registry lacks is a RegistryError naming what it does hold; a registry that cannot be read is a
RegistryUnavailableError (retryable), never taken for an absent model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nlpflow.errors import ModelError, RegistryError

if TYPE_CHECKING:
    from nlpflow.config.settings import Settings
    from nlpflow.tracking.tracker import Tracker

CHAMPION, CHALLENGER = "champion", "challenger"  # the registry's two aliases (nlpflow.release)


@dataclass(frozen=True)
class ModelRef:
    """One registered version, found in the registry (an alias resolved to its version)."""

    name: str
    version: int
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def __str__(self) -> str:
        return f"{self.name} version {self.version}" + (f" (@{self.alias})" if self.alias else "")


def parse_model_spec(spec: str | None, default_name: str) -> tuple[str, str | None, int | None]:
    """`NAME@ALIAS`, `NAME/VERSION`, `NAME` (its champion) or None (the default model's champion),
    with or without `models:/` -> (name, alias, version)."""
    text = (spec or default_name).strip().removeprefix("models:/")
    name, at, alias = text.rpartition("@")
    if at:
        if not name or not alias:
            raise ModelError(f"--model {spec!r}: write NAME@ALIAS, e.g. {default_name}@champion.")
        return name, alias, None
    name, slash, version = text.rpartition("/")
    if slash:
        if not name or not version.isdigit():
            raise ModelError(f"--model {spec!r}: write NAME/VERSION with a number, e.g. {name}/3.")
        return name, None, int(version)
    if not text:
        raise ModelError("--model is empty: write NAME@ALIAS or NAME/VERSION.")
    return text, CHAMPION, None


def resolve_model(
    tracker: Tracker,
    name: str,
    *,
    alias: str | None = None,
    version: int | None = None,
    option: str = "--model",
) -> ModelRef:
    """The version `alias` (or `version`) of registered model `name` names now; a RegistryError
    saying what the registry holds when it lacks one of them. `option`: where the user named
    the model, for the fix in the message. Neither alias nor version: the champion."""
    if alias is None and version is None:
        alias = CHAMPION
    aliases = tracker.aliases(name)
    if aliases is None:
        listed = ", ".join(tracker.registered_names()) or "none"
        raise RegistryError(
            f"no registered model {name!r} in {tracker.uri} (registered: {listed}): train and "
            f"register one with `nlpflow run`, name another in {option}, or set "
            "NLPFLOW_REGISTERED_MODEL (or params register.model_name) / NLPFLOW_TRACKING_URI "
            "to the model to use."
        )
    if alias is not None and not alias.isdigit():
        if alias not in aliases:
            known = ", ".join(f"@{a} -> version {v}" for a, v in sorted(aliases.items()))
            raise RegistryError(
                f"model {name!r} has no alias {alias!r} (aliases: {known or 'none'}): name one of "
                f"those, or a version, in {option}; or promote a version to {alias!r}."
            )
        return ModelRef(name, aliases[alias], alias)
    number = int(alias) if alias is not None else version
    if number is None or tracker.find_version(name, number) is None:
        versions = ", ".join(map(str, tracker.versions(name))) or "none"
        raise RegistryError(
            f"model {name!r} has no version {number} (versions: {versions}): name one of those "
            f"in {option}."
        )
    return ModelRef(name, number)


def resolve_spec(spec: str | None, settings: Settings, *, option: str = "--model") -> ModelRef:
    """The version `spec` names (NAME@ALIAS, NAME/VERSION, NAME, or None for the default
    model's champion: nlpflow.config.naming.project_model_name) in the settings' registry."""
    from nlpflow.config.naming import project_model_name
    from nlpflow.tracking.tracker import Tracker

    default = project_model_name(settings).name if not spec else "NAME"
    name, alias, version = parse_model_spec(spec, default)
    uri = settings.resolved_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        # MLflow would create an empty store here and then report the model missing.
        raise RegistryError(
            f"no MLflow store at {uri}: train and register a model first (nlpflow run), or "
            "point NLPFLOW_TRACKING_URI (or NLPFLOW_PROJECT_DIR) at the store that holds it."
        )
    return resolve_model(Tracker(settings), name, alias=alias, version=version, option=option)
