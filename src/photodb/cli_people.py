"""photodb people: name, correct and look at identities (photodb.people.identity, face_decisions,
views). Parses options, calls one function, reports; ids are printed so commands chain."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from photodb import cli_people_format as fmt
from photodb.cli_people_review import review_command, split_command
from photodb.cli_support import OneLineErrorsGroup, open_for_collection, verbose_option
from photodb.database.connection import Database
from photodb.people import covers, dates, face_decisions, identity, undo, views
from photodb.people.identity import PeopleError
from photodb.utils.terminal import printable

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


def run(
    collection: str | None,
    as_json: bool,
    action: Action,
    describe: Callable[[dict[str, Any]], str],
    *,
    name_library: bool = False,
) -> None:
    """Open the database, do `action`, print its result (with `name_library`, the JSON names the
    library too); PeopleError is one line on stderr, exit 2."""
    try:
        with open_for_collection(collection) as (db, collection_id):
            result = action(db, collection_id)
            library = db.settings.library
    except PeopleError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    shown = {"library": library, **result} if name_library else result
    click.echo(json.dumps(shown, indent=2, default=str) if as_json else describe(result))


@click.group(cls=OneLineErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@verbose_option
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
        run(
            collection,
            as_json,
            lambda db, cid: views.list_unsorted(db, cid, limit=limit or None),
            fmt.describe_unsorted,
        )
        return

    def describe(result: dict[str, Any]) -> str:
        lines = [
            f"person {p['id']}: {printable(p['name'])}: {fmt.counts(p)}, {fmt.plural(p['clusters'], 'cluster')}"
            f"{fmt.ages(p['age_range'])}{fmt.hidden(p)}  {printable(p['sample_path'])}"
            for p in result["persons"]
        ] or ["no persons yet"]
        if len(result["persons"]) < result["persons_total"]:
            lines.append(f"({len(result['persons'])} of {result['persons_total']} persons; --limit 0 lists all)")
        for c in result.get("clusters", []):
            lines.append(
                f"cluster {c['id']}: {fmt.counts(c)}{fmt.ages(c['age_range'])}"
                f"{' ' + printable(c['person']) if c['person'] else ''}{' verified' if c['verified'] else ''}"
                f"{fmt.hidden(c)}  {printable(c['sample_path'])}"
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
        name_library=True,
    )


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
    run(collection, as_json, action, fmt.describe_shown)


def _show_person(db: Database, person_id: int, photos: int, collection_id: int | None) -> dict[str, Any]:
    """views.show_person plus the person's age in each dated photo (captured or estimated)."""
    return {
        **views.show_person(db, person_id, photos=photos, collection_id=collection_id),
        "ages": dates.person_ages(db, person_id)[:photos],
    }


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
@click.option("--face", "face_id", type=int, help="name the person of this face (it moves to them)")
@click.option("--new", "new", is_flag=True, help="a second person of a name someone already has, on purpose")
@by_option
@common
def name_command(
    args: tuple[str, ...],
    cluster_id: int | None,
    face_id: int | None,
    new: bool,
    by: str,
    collection: str | None,
    as_json: bool,
) -> None:
    """Name or rename a person: `name PERSON_ID "First Last"`, `name --cluster CLUSTER_ID "First Last"`
    or `name --face FACE_ID "First Last"`. A cluster or face given a name a person already has
    (case and spaces aside) joins that person; --new makes a second person of that name."""
    if cluster_id is not None and face_id is not None:
        raise click.UsageError("give --cluster or --face, not both")
    action: Action
    if cluster_id is not None or face_id is not None:
        if len(args) != 1:
            raise click.UsageError('with --cluster or --face give only the name: name --cluster 12 "Grace Hopper"')
        name = args[0]
        if cluster_id is not None:
            action = lambda db, cid: identity.name_cluster(db, cluster_id, name, by=by, new=new, collection_id=cid)  # noqa: E731
        else:
            assert face_id is not None
            action = lambda db, cid: face_decisions.name_face(db, face_id, name, by=by, new=new, collection_id=cid)  # noqa: E731
    else:
        if len(args) != 2 or not args[0].isdigit():
            raise click.UsageError('give a person id and a name: name 3 "Grace Hopper"')
        person_id, name = int(args[0]), args[1]
        action = lambda db, cid: identity.name_person(db, person_id, name, by=by, new=new, collection_id=cid)  # noqa: E731
    run(collection, as_json, action, fmt.describe_naming)


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
        lambda r: f"cluster {r['cluster_id']} -> person {r['person_id']}: {printable(r['name'])}",
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
@click.argument("person_arg", metavar="[PERSON_ID]", type=int, required=False)
@click.option("--person", "person_option", type=int, help="the person to hide (as PERSON_ID)")
@click.option("--cluster", "cluster_id", type=int, help="hide this cluster instead")
@click.option("--unhide", is_flag=True, help="show it again")
@by_option
@common
def hide_command(
    person_arg: int | None,
    person_option: int | None,
    cluster_id: int | None,
    unhide: bool,
    by: str,
    collection: str | None,
    as_json: bool,
) -> None:
    """Hide a person (`hide 4`) or a cluster (`hide --cluster 12`) from listings (strangers,
    junk); a hidden cluster takes no new faces."""
    given = [x for x in (person_arg, person_option, cluster_id) if x is not None]
    if len(given) != 1:
        raise click.UsageError("give one of PERSON_ID, --person or --cluster")
    person_id = person_arg if person_arg is not None else person_option
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
        lambda r: f"person {r['merged_person_id']} merged into person {r['person_id']}: {printable(r['name'])}",
    )


@people.command("cover")
@click.argument("person_id", type=int)
@click.argument("face_id", type=int, required=False)
@by_option
@common
def cover_command(person_id: int, face_id: int | None, by: str, collection: str | None, as_json: bool) -> None:
    """Show FACE on PERSON's card (no FACE: the sharpest frontal face again)."""
    run(
        collection,
        as_json,
        lambda db, cid: covers.set_cover(db, person_id, face_id, by=by, collection_id=cid),
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
            f"face {r['face_id']}: {fmt.cluster(r['from_cluster_id'])} -> {fmt.cluster(r['cluster_id'])}"
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
            f"face {r['face_id']}: not "
            + " / ".join(
                f"{kind} {r[key]}"
                for kind, key in (("cluster", "rejected_cluster_id"), ("person", "rejected_person_id"))
                if r[key] is not None
            )
            + f"; now {fmt.cluster(r['cluster_id'])} ({r['outcome']})"
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


@people.command("history")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="changes listed (0: all)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def history_command(limit: int, as_json: bool) -> None:
    """The changes made with `photodb people` and the page, newest first: id, when, who, what."""
    run(None, as_json, lambda db, _cid: {"changes": undo.history(db, limit or None)}, fmt.describe_history)


@people.command("undo")
@click.argument("change_id", type=int, required=False)
@by_option
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def undo_command(change_id: int | None, by: str, as_json: bool) -> None:
    """Revert the last change (or change CHANGE_ID from `people history`) exactly, merges and
    splits included; refused when a later change touched the same rows (undo that one first)."""
    run(
        None,
        as_json,
        lambda db, _cid: undo.undo(db, change_id, by=by),
        lambda r: f"undid change {r['undone']} ({printable(r['what'])}) as change {r['change_id']}",
    )
