"""photodb people: name, correct and look at identities (photodb.people.identity, face_decisions,
views). Parses options, calls one function, reports; ids are printed so commands chain."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from photodb.cli_people_review import review_command, split_command
from photodb.cli_support import OneLineErrorsGroup, open_for_collection
from photodb.database.connection import Database
from photodb.people import covers, dates, face_decisions, identity, views
from photodb.people.identity import PeopleError

#: Bad input (unknown ids, self-links, contradictions): one line, nothing written.
EXIT_BAD_INPUT = 2

Action = Callable[[Database, int | None], dict[str, Any]]


def _check_by(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    value = value.strip()
    if not value or value.startswith("auto:"):
        raise click.BadParameter("names who decided; 'auto:' marks automatic work, not a person")
    return value


def common(command: Callable[..., None]) -> Callable[..., None]:
    """--json and --collection on every command."""
    command = click.option("--json", "as_json", is_flag=True, help="print the result as JSON")(command)
    return click.option("--collection", default=None, help="collection name (ids must belong to it)")(command)


def by_option(command: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--by", default="user", show_default=True, callback=_check_by, help="who decides (recorded with the change)"
    )(command)


def run(collection: str | None, as_json: bool, action: Action, describe: Callable[[dict[str, Any]], str]) -> None:
    """Open the database, do `action`, print its result; PeopleError is one line on stderr, exit 2."""
    try:
        with open_for_collection(collection) as (db, collection_id):
            result = action(db, collection_id)
    except PeopleError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(json.dumps(result, indent=2, default=str) if as_json else describe(result))


@click.group(cls=OneLineErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
def people() -> None:
    """Name, correct and look at the people found in your photos.

    Faces are detection ids, clusters and persons their ids (`people list --clusters` and
    `people show` print them). Every change is recorded with --by (default 'user'), is kept by
    `photodb cluster` and maintenance, and is refused with one line (exit 2) when an id is
    unknown or the change contradicts an earlier decision.

    \b
    Examples:
      photodb people list --clusters         persons and clusters, most faces first
      photodb people name --cluster 12 "Grace Hopper"
      photodb people not 4711                face 4711 is not this cluster's person
      photodb people merge 3 8               person 8 is person 3
      photodb people split --cluster 12      two people in one cluster: pick the half that keeps it
      photodb people review                  faces close to two clusters, one by one
    """


@people.command("list")
@click.option("--clusters", "with_clusters", is_flag=True, help="list the clusters too")
@click.option(
    "--unsorted",
    is_flag=True,
    help="list the faces in no cluster instead, largest first, each with the nearest person to move it to",
)
@click.option("--all", "include_hidden", is_flag=True, help="include hidden persons and clusters")
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="most persons/clusters listed (0: all)"
)
@common
def list_command(
    with_clusters: bool, unsorted: bool, include_hidden: bool, limit: int, collection: str | None, as_json: bool
) -> None:
    """Persons (unnamed ones as 'Unknown #id') with face and photo counts, ages and a sample photo,
    most faces first; with --unsorted, the faces that are nobody's yet."""
    if unsorted:
        if with_clusters or include_hidden:
            raise click.UsageError("--unsorted takes only --limit, --collection and --json")
        run(collection, as_json, lambda db, cid: views.list_unsorted(db, cid, limit=limit or None), _describe_unsorted)
        return

    def describe(result: dict[str, Any]) -> str:
        lines = [
            f"person {p['id']}: {p['name']}: {p['faces']} faces, {p['photos']} photos, {p['clusters']} clusters"
            f"{_ages(p['age_range'])}{_hidden(p)}  {p['sample_path'] or ''}"
            for p in result["persons"]
        ] or ["no persons yet"]
        if len(result["persons"]) < result["persons_total"]:
            lines.append(f"({len(result['persons'])} of {result['persons_total']} persons; --limit 0 lists all)")
        for c in result.get("clusters", []):
            lines.append(
                f"cluster {c['id']}: {c['faces']} faces, {c['photos']} photos{_ages(c['age_range'])}"
                f"{' ' + c['person'] if c['person'] else ''}{' verified' if c['verified'] else ''}"
                f"{_hidden(c)}  {c['sample_path'] or ''}"
            )
        if len(result.get("clusters", [])) < result.get("clusters_total", 0):
            lines.append(f"({len(result['clusters'])} of {result['clusters_total']} clusters; --limit 0 lists all)")
        return "\n".join(lines)

    run(
        collection,
        as_json,
        lambda db, cid: views.list_people(
            db, cid, include_hidden=include_hidden, with_clusters=with_clusters, limit=limit or None
        ),
        describe,
    )


def _describe_unsorted(result: dict[str, Any]) -> str:
    lines = []
    for face in result["faces"]:
        near = face["nearest_person"]
        hint = (
            f"nearest: person {near['person_id']} {near['name']} (distance {near['distance']:.2f}); "
            f"`photodb people move {face['id']} --person {near['person_id']}`"
            if near
            else "no person to suggest yet: name it with `photodb web`"
        )
        issue = f", {face['quality_issue']}" if face["quality_issue"] else ""
        lines.append(f"face {face['id']} ({face['size'][0]}x{face['size'][1]} px{issue}) {face['photo_path']}: {hint}")
    if not lines:
        return "no unsorted faces: every face is in a cluster"
    if len(result["faces"]) < result["faces_total"]:
        lines.append(f"({len(result['faces'])} of {result['faces_total']} unsorted faces; --limit 0 lists all)")
    return "\n".join(lines)


def _ages(age_range: list[int] | None) -> str:
    return f", age {age_range[0]}-{age_range[1]}" if age_range else ""


def _hidden(row: dict[str, Any]) -> str:
    return " (hidden)" if row.get("hidden") else ""


@people.command("show")
@click.argument("person_id", type=int, required=False)
@click.option("--cluster", "cluster_id", type=int, help="show a cluster and its faces instead")
@click.option("--face", "face_id", type=int, help="show one face: cluster, person, must/cannot-links")
@click.option("--photos", type=click.IntRange(min=0), default=20, show_default=True, help="photo paths to list")
@click.option("--faces", type=click.IntRange(min=0), default=50, show_default=True, help="faces to list (0: all)")
@common
def show_command(
    person_id: int | None,
    cluster_id: int | None,
    face_id: int | None,
    photos: int,
    faces: int,
    collection: str | None,
    as_json: bool,
) -> None:
    """One person (clusters, faces, photos, estimated birth year, gender), cluster or face."""
    if sum(x is not None for x in (person_id, cluster_id, face_id)) != 1:
        raise click.UsageError("give one of PERSON_ID, --cluster or --face")
    action: Action
    if cluster_id is not None:
        action = lambda db, cid: views.show_cluster(db, cluster_id, faces=faces, collection_id=cid)  # noqa: E731
    elif face_id is not None:
        action = lambda db, cid: views.show_face(db, face_id, collection_id=cid)  # noqa: E731
    else:
        assert person_id is not None
        action = lambda db, cid: _show_person(db, person_id, photos, cid)  # noqa: E731
    run(collection, as_json, action, _describe_shown)


def _show_person(db: Database, person_id: int, photos: int, collection_id: int | None) -> dict[str, Any]:
    """views.show_person plus the person's age in each dated photo (captured or estimated)."""
    return {
        **views.show_person(db, person_id, photos=photos, collection_id=collection_id),
        "ages": dates.person_ages(db, person_id)[:photos],
    }


def _describe_shown(r: dict[str, Any]) -> str:
    if "face_list" in r:
        head = f"cluster {r['id']}: {r['faces']} faces, {r['photos']} photos{_ages(r['age_range'])}"
        head += f", person {r['person_id']} {r['person']}" if r["person_id"] else ", no person"
        head += (" verified" if r["verified"] else "") + _hidden(r)
        return "\n".join([head, *(f"  face {f['id']} ({f['status']}): {f['photo_path']}" for f in r["face_list"])])
    if "photo_path" in r:
        return (
            f"face {r['id']}: cluster {r['cluster_id']}, person {r['person_id']}, {r['status']}: {r['photo_path']}"
            f"\n  must-link {r['must_link']}  cannot-link {r['cannot_link']}"
        )
    lines = [
        f"person {r['id']}: {r['name']}: {r['faces']} faces, {r['photos']} photos{_ages(r['age_range'])}"
        f", born ~{r['estimated_birth_year']}, gender {r['gender']}{_hidden(r)}"
    ]
    lines += [f"  cluster {c['id']}: {c['faces']} faces  {c['sample_path'] or ''}" for c in r["clusters"]]
    lines += [f"  photo {path}" for path in r["photo_paths"]]
    lines += [
        f"  age {a['age']} in photo {a['photo_id']} ({_when(a)})" for a in r.get("ages", []) if a["age"] is not None
    ]
    return "\n".join(lines)


def _when(age: dict[str, Any]) -> str:
    if age["captured_at"] is not None:
        return f"{age['captured_at']:%Y-%m-%d}"
    return f"about {age['estimated_year']:.0f}, estimated"


@people.command("set-birthdate")
@click.argument("person_id", type=int)
@click.argument("birth_date", required=False)
@click.option("--clear", is_flag=True, help="forget the birth date (the estimated birth year is used again)")
@by_option
@common
def set_birthdate_command(
    person_id: int, birth_date: str | None, clear: bool, by: str, collection: str | None, as_json: bool
) -> None:
    """Give a person's birth date (YYYY-MM-DD): ages and undated photos' years follow from it."""
    if clear == (birth_date is not None):
        raise click.UsageError("give a birth date (YYYY-MM-DD) or --clear")
    run(
        collection,
        as_json,
        lambda db, cid: identity.set_birth_date(db, person_id, birth_date, by=by, collection_id=cid),
        lambda r: (
            f"person {r['person_id']}: born {r['birth_date'] or 'unknown (estimated)'}, "
            f"{r['estimated']} undated photos estimated"
        ),
    )


@people.command("name")
@click.argument("args", nargs=-1, required=True)
@click.option("--cluster", "cluster_id", type=int, help="name the person of this cluster (made if none)")
@by_option
@common
def name_command(args: tuple[str, ...], cluster_id: int | None, by: str, collection: str | None, as_json: bool) -> None:
    """Name or rename a person: `name PERSON_ID "First Last"` or `name --cluster CLUSTER_ID "First Last"`."""
    if cluster_id is not None:
        if len(args) != 1:
            raise click.UsageError('with --cluster give only the name: name --cluster 12 "Grace Hopper"')
        name = args[0]
        action: Action = lambda db, cid: identity.name_cluster(db, cluster_id, name, by=by, collection_id=cid)  # noqa: E731
    else:
        if len(args) != 2 or not args[0].isdigit():
            raise click.UsageError('give a person id and a name: name 3 "Grace Hopper"')
        person_id, name = int(args[0]), args[1]
        action = lambda db, cid: identity.name_person(db, person_id, name, by=by, collection_id=cid)  # noqa: E731
    run(
        collection, as_json, action, lambda r: f"person {r['person_id']}: {r['name']}{' (new)' if r['created'] else ''}"
    )


people.add_command(name_command, "rename")


@people.command("link")
@click.argument("cluster_id", type=int)
@click.argument("person_id", type=int)
@by_option
@common
def link_command(cluster_id: int, person_id: int, by: str, collection: str | None, as_json: bool) -> None:
    """Link a cluster to a person."""
    run(
        collection,
        as_json,
        lambda db, cid: identity.link_cluster(db, cluster_id, person_id, by=by, collection_id=cid),
        lambda r: f"cluster {r['cluster_id']} -> person {r['person_id']}: {r['name']}",
    )


@people.command("unlink")
@click.argument("cluster_id", type=int)
@by_option
@common
def unlink_command(cluster_id: int, by: str, collection: str | None, as_json: bool) -> None:
    """Unlink a cluster from its person (and keep automatic association from linking it back)."""
    run(
        collection,
        as_json,
        lambda db, cid: identity.unlink_cluster(db, cluster_id, by=by, collection_id=cid),
        lambda r: (
            f"cluster {r['cluster_id']}: unlinked from person {r['previous_person_id']}"
            if r["changed"]
            else f"cluster {r['cluster_id']}: had no person"
        ),
    )


@people.command("verify")
@click.argument("cluster_id", type=int)
@click.option("--undo", is_flag=True, help="mark the cluster as not verified")
@by_option
@common
def verify_command(cluster_id: int, undo: bool, by: str, collection: str | None, as_json: bool) -> None:
    """Mark a cluster as checked: every re-clustering keeps its faces together."""
    run(
        collection,
        as_json,
        lambda db, cid: identity.verify_cluster(db, cluster_id, by=by, verified=not undo, collection_id=cid),
        lambda r: f"cluster {r['cluster_id']}: {'verified' if r['verified'] else 'not verified'}",
    )


@people.command("hide")
@click.option("--person", "person_id", type=int)
@click.option("--cluster", "cluster_id", type=int)
@click.option("--unhide", is_flag=True, help="show it again")
@by_option
@common
def hide_command(
    person_id: int | None, cluster_id: int | None, unhide: bool, by: str, collection: str | None, as_json: bool
) -> None:
    """Hide a person or a cluster (strangers, junk) from listings; a hidden cluster takes no new faces."""
    if (person_id is None) == (cluster_id is None):
        raise click.UsageError("give one of --person or --cluster")
    action: Action
    if person_id is not None:
        action = lambda db, cid: identity.hide_person(db, person_id, by=by, hidden=not unhide, collection_id=cid)  # noqa: E731
    else:
        assert cluster_id is not None
        action = lambda db, cid: identity.hide_cluster(db, cluster_id, by=by, hidden=not unhide, collection_id=cid)  # noqa: E731

    def describe(r: dict[str, Any]) -> str:
        what = f"person {r['person_id']}" if "person_id" in r else f"cluster {r['cluster_id']}"
        return f"{what}: {'hidden' if r['hidden'] else 'shown'}"

    run(collection, as_json, action, describe)


@people.command("merge")
@click.argument("keep_id", type=int)
@click.argument("other_id", type=int)
@by_option
@common
def merge_command(keep_id: int, other_id: int, by: str, collection: str | None, as_json: bool) -> None:
    """Merge person OTHER into person KEEP (OTHER's clusters and faces move, OTHER is deleted)."""
    run(
        collection,
        as_json,
        lambda db, cid: identity.merge_persons(db, keep_id, other_id, by=by, collection_id=cid),
        lambda r: f"person {r['merged_person_id']} merged into person {r['person_id']}: {r['name']}",
    )


@people.command("cover")
@click.argument("person_id", type=int)
@click.argument("face_id", type=int, required=False)
@common
def cover_command(person_id: int, face_id: int | None, collection: str | None, as_json: bool) -> None:
    """Show FACE on PERSON's card (no FACE: the sharpest frontal face again)."""
    run(
        collection,
        as_json,
        lambda db, cid: covers.set_cover(db, person_id, face_id, collection_id=cid),
        lambda r: (
            f"person {r['person_id']}: cover face {r['cover_face_id']}"
            + ("" if r["chosen"] else " (chosen automatically)")
        ),
    )


@people.command("move")
@click.argument("face_id", type=int)
@click.option("--cluster", "cluster_id", type=int, help="into this cluster")
@click.option("--person", "person_id", type=int, help="to this person (their nearest cluster)")
@click.option("--unassign", is_flag=True, help="out of every cluster")
@by_option
@common
def move_command(
    face_id: int,
    cluster_id: int | None,
    person_id: int | None,
    unassign: bool,
    by: str,
    collection: str | None,
    as_json: bool,
) -> None:
    """Move a face by hand (it stays where you put it)."""
    if sum((cluster_id is not None, person_id is not None, unassign)) != 1:
        raise click.UsageError("give one of --cluster, --person or --unassign")
    run(
        collection,
        as_json,
        lambda db, cid: face_decisions.move_face(
            db, face_id, cluster_id=cluster_id, person_id=person_id, by=by, collection_id=cid
        ),
        lambda r: (
            f"face {r['face_id']}: cluster {r['from_cluster_id']} -> {r['cluster_id']}"
            + (f" (person {r['person_id']})" if r["person_id"] else "")
        ),
    )


@people.command("not")
@click.argument("face_id", type=int)
@by_option
@common
def not_command(face_id: int, by: str, collection: str | None, as_json: bool) -> None:
    """This face is not its cluster's person: keep it apart from them and place it elsewhere."""
    run(
        collection,
        as_json,
        lambda db, cid: face_decisions.reject_face(db, face_id, by=by, collection_id=cid),
        lambda r: (
            f"face {r['face_id']}: not cluster {r['rejected_cluster_id']} / person {r['rejected_person_id']}"
            f"; now cluster {r['cluster_id']} ({r['outcome']})"
        ),
    )


def _link_command(kind: face_decisions.LinkKind) -> click.Command:
    @click.command(f"{kind}-link")
    @click.argument("first", type=int)
    @click.argument("second", type=int)
    @by_option
    @common
    def command(first: int, second: int, by: str, collection: str | None, as_json: bool) -> None:
        run(
            collection,
            as_json,
            lambda db, cid: face_decisions.link_faces(db, kind, first, second, by=by, collection_id=cid),
            lambda r: (
                f"faces {r['face_ids'][0]} and {r['face_ids'][1]}: {r['kind']}"
                f"{'' if r['created'] else ' (already there)'}"
            ),
        )

    command.help = "These two faces are the same person." if kind == "must" else "These two faces are different people."
    return command


people.add_command(_link_command("must"))
people.add_command(_link_command("cannot"))
people.add_command(split_command)
people.add_command(review_command)
