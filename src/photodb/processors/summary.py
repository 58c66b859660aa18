"""What a run reports: per stage, what it did and what it left, and why anything was not run."""

from __future__ import annotations

from dataclasses import dataclass, field

from photodb.database.models import StageError
from photodb.people.refresh import PeopleReport


@dataclass
class StageSummary:
    completed: int = 0  # by this run
    failed: int = 0  # by this run
    unchanged: int = 0  # completed before this run, left alone
    skipped: int = 0  # the stage cannot run here for them (a model is missing); a later run that can, will
    skip_reasons: dict[str, int] = field(default_factory=dict)  # why, and for how many photos
    waiting: int = 0  # pending: an earlier stage has not run for them yet
    blocked: int = 0  # an earlier stage failed for them


@dataclass
class RunSummary:
    root: str
    collection: str
    stages: dict[str, StageSummary]
    discovered: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    ignored_files: int = 0
    symlink_loops: int = 0
    unavailable: dict[str, str] = field(default_factory=dict)  # stages left out of the run, and why
    skipping: dict[str, str] = field(default_factory=dict)  # stages in the run that skip every photo, and why
    errors: list[StageError] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    dry_run: bool = False
    stopped_by: str | None = None  # the error that ended the run early, and in which thread
    people: PeopleReport | None = None  # the people step after the stages (None: not run)
    people_error: str | None = None  # why the people step could not finish (the stages' work stands)
