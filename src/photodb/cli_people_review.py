"""`photodb people split` and `photodb people review`: correcting identities by hand.

Both are click commands the `people` group adds. Bad input (unknown ids, a cluster with fewer than
two faces, --keep other than 1 or 2) is one line on stderr and exit 2, with nothing written.
"""

from __future__ import annotations

import json
import sys
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from photodb.cli_support import open_for_collection
from photodb.database.connection import Database
from photodb.database.review_repository import CandidateRow
from photodb.people.review import ReviewError, ReviewResult, accept, list_pending, reject
from photodb.people.split import SplitError, SplitPlan, SplitResult, plan_split, split
from photodb.utils.terminal import printable

EXIT_BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"[red]error:[/] {escape(printable(message))}", soft_wrap=True, highlight=False)
    sys.exit(EXIT_BAD_INPUT)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _show_halves(plan: SplitPlan) -> None:
    console = Console()
    console.print(f"{plan.kind} {plan.target_id} ({plan.embedding_model}) in two halves:", highlight=False)
    for half in plan.halves:
        clusters = ", ".join(map(str, half.cluster_ids)) or "-"
        table = Table(
            "face", "photo", "path", title=f"half {half.number}: {half.face_count} faces (clusters {clusters})"
        )
        for sample in half.samples:
            table.add_row(str(sample.detection_id), str(sample.photo_id), escape(printable(sample.path)))
        console.print(table)


def _show_split(result: SplitResult) -> None:
    plan = result.plan
    lines = [
        f"{plan.kind} {plan.target_id} kept half {result.kept} ({plan.halves[(result.kept or 1) - 1].face_count} faces)"
    ]
    if result.new_person_id is not None:
        lines.append(f"new person {result.new_person_id} ('Unknown') holds the other half")
    if result.relinked_clusters:
        lines.append(
            f"clusters moved to person {result.new_person_id}: {', '.join(map(str, result.relinked_clusters))}"
        )
    if result.new_cluster_id is not None:
        lines.append(f"new cluster {result.new_cluster_id} with {result.moved_faces} faces")
    for line in lines:
        click.echo(line)


@click.command("split")
@click.option("--cluster", "cluster_id", type=int, default=None, help="the cluster to split")
@click.option("--person", "person_id", type=int, default=None, help="the person to split")
@click.option("--keep", type=int, default=None, help="the half (1 or 2) that keeps the cluster id or person")
@click.option("--dry-run", is_flag=True, help="show the two halves, change nothing")
@click.option("--by", default="user", show_default=True, help="who decides (recorded as created_by)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def split_command(
    cluster_id: int | None, person_id: int | None, keep: int | None, dry_run: bool, by: str, as_json: bool
) -> None:
    """Split a cluster or a person in two: its faces are re-clustered into two halves, one half
    keeps the cluster (or person and its name), the other becomes a new cluster (or a new person
    'Unknown'); cannot-links keep the halves apart from then on."""
    if (cluster_id is None) == (person_id is None):
        fail("give one of --cluster CLUSTER_ID or --person PERSON_ID")
    if keep is not None and keep not in (1, 2):
        fail(f"--keep must be 1 or 2, not {keep}")
    with open_for_collection(None) as (db, _):
        try:
            plan = plan_split(db, cluster_id=cluster_id, person_id=person_id)
            if dry_run:
                if as_json:
                    click.echo(json.dumps(SplitResult(plan, None).as_dict(), indent=2))
                else:
                    _show_halves(plan)
                return
            shown = None
            if keep is None:
                if as_json or not _interactive():
                    fail("--keep 1|2 is needed (run it with --dry-run to see the halves)")
                _show_halves(plan)
                keep = click.prompt("Which half keeps it", type=click.Choice(["1", "2"]), show_choices=True)
                keep, shown = int(keep), plan
            result = split(db, cluster_id=cluster_id, person_id=person_id, keep=keep, shown=shown, by=by)
        except SplitError as error:
            fail(str(error))
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        _show_split(result)


def _candidate_line(row: CandidateRow) -> str:
    person = f"person {row.person_id} ({printable(row.person_name) or 'no name'})" if row.person_id else "no person"
    return (
        f"candidate {row.candidate_id}: face {row.detection_id} in {printable(row.path)} -> cluster {row.cluster_id} "
        f"({row.cluster_face_count} faces, {person}), similarity {row.similarity:.3f}"
    )


def _result_line(result: ReviewResult) -> str:
    line = f"candidate {result.candidate_id} {result.status}: face {result.detection_id}"
    if result.status == "accepted":
        line += f" is now in cluster {result.cluster_id}"
        if result.also_rejected:
            line += f" (rejected: {', '.join(map(str, result.also_rejected))})"
    else:
        line += f" never goes to cluster {result.cluster_id}"
        if result.reassigned is not None:
            where = f"cluster {result.now_in_cluster}" if result.now_in_cluster else result.reassigned
            line += f"; assigned again: {where}"
    return line


@click.command("review")
@click.option("--accept", "accept_id", type=int, default=None, help="accept this match candidate")
@click.option("--reject", "reject_id", type=int, default=None, help="reject this match candidate")
@click.option("--list", "list_only", is_flag=True, help="list the pending candidates")
@click.option("--collection", default=None, help="collection name (default: all)")
@click.option("--by", default="user", show_default=True, help="who decides (recorded as reviewed_by)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def review_command(
    accept_id: int | None, reject_id: int | None, list_only: bool, collection: str | None, by: str, as_json: bool
) -> None:
    """Review faces that fit two clusters almost equally (face_match_candidate), one by one:
    accept puts the face in that cluster, reject keeps it out of it for good."""
    if sum((accept_id is not None, reject_id is not None, list_only)) > 1:
        fail("give at most one of --accept, --reject and --list")
    with open_for_collection(collection) as (db, collection_id):
        try:
            if accept_id is not None or reject_id is not None:
                decide = accept if accept_id is not None else reject
                result = decide(db, accept_id if accept_id is not None else reject_id, by=by)  # type: ignore[arg-type]
                click.echo(json.dumps(result.as_dict(), indent=2) if as_json else _result_line(result))
                return
            rows = list_pending(db, collection_id)
            if list_only or as_json:
                if as_json:
                    click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
                else:
                    for row in rows:
                        click.echo(_candidate_line(row))
                    click.echo(f"{len(rows)} pending")
                return
            if not _interactive():
                fail("review one by one needs a terminal: use --list, --accept ID or --reject ID")
            _review_interactively(db, rows, by)
        except ReviewError as error:
            fail(str(error))


def _review_interactively(db: Database, rows: list[CandidateRow], by: str) -> None:
    decided: set[int] = set()  # faces already settled in this session: their other rows are gone
    counts = {"accepted": 0, "rejected": 0, "skipped": 0}
    for row in rows:
        if row.detection_id in decided:
            continue
        click.echo(_candidate_line(row))
        answer = click.prompt("[a]ccept, [r]eject, [s]kip, [q]uit", type=click.Choice(["a", "r", "s", "q"]))
        if answer == "q":
            break
        if answer == "s":
            counts["skipped"] += 1
            continue
        try:
            result = (accept if answer == "a" else reject)(db, row.candidate_id, by=by)
        except ReviewError as error:  # reviewed meanwhile by someone else: say so and go on
            click.echo(f"skipped: {error}")
            continue
        counts[result.status] += 1
        if result.status == "accepted":
            decided.add(row.detection_id)
        click.echo(_result_line(result))
    click.echo(", ".join(f"{n} {what}" for what, n in counts.items()))
