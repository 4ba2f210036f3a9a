"""schedule: when the training deployment runs, and whether unchanged data skips a run."""

from __future__ import annotations

from pydantic import Field, field_validator

from nlpflow.config.sections.base import Section


class ScheduleParams(Section):
    """schedule: when the training deployment runs, and whether unchanged data skips a run."""

    # Checked as Prefect reads it when `nlpflow deploy` builds the schedule (the only reader,
    # nlpflow.orchestration.deployments), not here: params never import Prefect.
    cron: str | None = Field(
        default=None,
        description="Cron of the training deployment (nlpflow deploy; --cron overrides it); "
        "null = no schedule, runs start only when triggered.",
    )
    timezone: str = Field(default="UTC", description="IANA time zone the cron is read in.")
    skip_unchanged_data: bool = Field(
        default=True,
        description="End a flow run without training when the gathered snapshot, the params "
        "and the code equal those of the last successful run (recorded as a skip).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Paris)"
            ) from None
        return value
