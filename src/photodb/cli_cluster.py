"""photodb cluster (and scripts/bootstrap_clusters.py): run HDBSCAN over all faces and persist the run
(see photodb.clustering.bootstrap)."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from photodb.cli_support import open_for_collection, verbose_option
from photodb.clustering.hdbscan_compat import UnsupportedHdbscan
from photodb.clustering.incremental import assign_unclustered
from photodb.people.age_gender import aggregate_people


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dry-run", is_flag=True, help="print what would change, write nothing")
@click.option(
    "--assign-new",
    is_flag=True,
    help="do not re-cluster: assign faces without a cluster to the active run's clusters (incremental)",
)
@click.option(
    "--min-cluster-size",
    type=click.IntRange(min=2),
    default=None,
    help="fewest faces that form an identity (default HDBSCAN_MIN_CLUSTER_SIZE, 3)",
)
@click.option(
    "--min-samples",
    type=click.IntRange(min=1),
    default=None,
    help="HDBSCAN core-point neighbours (default HDBSCAN_MIN_SAMPLES, 2)",
)
@click.option("--collection", default=None, help="collection name (default: all)")
@click.option("--json", "as_json", is_flag=True)
@verbose_option
def main(
    dry_run: bool,
    assign_new: bool,
    min_cluster_size: int | None,
    min_samples: int | None,
    collection: str | None,
    as_json: bool,
) -> None:
    """Group all face embeddings into identities with HDBSCAN, one embedding model at a time.

    Run after importing a batch of photos. Manual work (manual assignments, verified or named
    clusters, must-link/cannot-link) is kept and re-applied; new faces added later are assigned
    incrementally against the run this stores: by the detection stage as they are found
    (CLUSTERING_ASSIGN_ON_DETECTION), or all at once with --assign-new.
    """
    console = Console(stderr=True)
    if assign_new:
        if dry_run or min_cluster_size is not None or min_samples is not None:
            raise click.UsageError("--assign-new takes only --collection and --json")
        _assign_new(console, collection, as_json)
        return
    from photodb.clustering.bootstrap import bootstrap  # scipy and scikit-learn: ~1 s, only here

    with open_for_collection(collection) as (db, collection_id), console.status("clustering") as status:
        try:
            reports = bootstrap(
                db,
                collection_id=collection_id,
                min_cluster_size=min_cluster_size,
                min_samples=min_samples,
                dry_run=dry_run,
                progress=lambda message: status.update(message),
            )
        except UnsupportedHdbscan as error:
            raise click.ClickException(str(error)) from None
        people = None
        if not dry_run:  # clusters moved: people's faces changed, so do their birth years and genders
            status.update("people: age and gender")
            people = aggregate_people(db, collection_id, min_confidence=db.settings.age_gender_gender_min_confidence)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in reports], indent=2))
        return
    for r in reports:
        verb = "would make" if dry_run else "made"
        click.echo(
            f"collection {r.collection_id} / {r.embedding_model}: {r.faces} faces; {verb} {r.clusters} clusters "
            f"({r.new_clusters} new, {r.reused_clusters} kept, {r.deleted_clusters} deleted), {r.noise} noise "
            f"(faces like no other); {r.faces_moved} faces moved, {r.faces_newly_clustered} newly clustered, "
            f"{r.faces_to_noise} to noise; then {r.noise_placed} noise faces placed, {r.leftover_clusters} clusters "
            f"of faces left over; {r.seconds:.1f} s"
        )
        click.echo(f"  {_decisions_kept(r.pinned_faces, r.constrained_faces)}")
        for conflict in r.conflicts:
            click.echo(f"  note: {conflict}")
    if not reports:
        click.echo("no faces to cluster")
    if people is not None and people.people:
        click.echo(f"{people.people} people: age and gender updated")


def _decisions_kept(pinned: int, constrained: int) -> str:
    """What the run did with the user's own decisions, in words (a fresh library has none yet)."""
    if not pinned and not constrained:
        return (
            "no decisions of yours to keep yet: faces you move, name or link with `photodb people` "
            "(or on `photodb web`) stay where you put them in every later run"
        )
    return (
        f"your decisions kept: {pinned} faces pinned where you put them, {constrained} moved by constraints "
        "(to honour your must-link / cannot-link)"
    )


OUTCOME_WORDS = {
    "tier1": "placed by the stored HDBSCAN model",
    "tier2": "within a cluster's distance",
    "pending": "close to two clusters, sent to review",
    "unassigned": "left in the unassigned pool",
    "already": "already decided elsewhere",
    "skipped": "without an active run",
}


def _assign_new(console: Console, collection: str | None, as_json: bool) -> None:
    columns = (TextColumn("assigning new faces"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with open_for_collection(collection) as (db, collection_id), Progress(*columns, console=console) as bar:
        task = bar.add_task("assign", total=None)
        report = assign_unclustered(
            db, collection_id, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
        if report.cluster_of:
            aggregate_people(db, collection_id, min_confidence=db.settings.age_gender_gender_min_confidence)
    summary = report.as_dict()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    if not report.cluster_of and not report.outcomes:
        click.echo("no faces waiting for a cluster")
        return
    outcomes = ", ".join(f"{count} {OUTCOME_WORDS.get(name, name)}" for name, count in sorted(report.outcomes.items()))
    click.echo(f"{summary['faces']} faces: {summary['assigned']} assigned to a cluster ({outcomes})")
    if report.outcomes.get("skipped"):
        click.echo("  faces without an active run for their collection and model wait for a bootstrap")


if __name__ == "__main__":
    main()
