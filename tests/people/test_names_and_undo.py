"""Issue 22 §3: names behave like names (matched to the person who has them, checked, printed
escaped), every people decision can be listed and undone exactly, and outputs read as facts."""

from __future__ import annotations

import pytest

from photodb.database.change_repository import TRACKED
from tests.people.conftest import ok_json

ESC_NAME = "Eve \x1b[2J\x07Mallory"


def snapshot(db) -> dict[str, list]:
    """Every row of every table a people decision writes."""
    with db.connection() as conn:
        return {
            table: conn.execute(
                f"SELECT to_jsonb(t) FROM {table} t ORDER BY {key}"  # noqa: S608 (constants)
            ).fetchall()
            for table, key in TRACKED.items()
        }


def test_a_second_cluster_named_alike_joins_the_person_and_says_so(db, library, cli):
    first, second, third = list(library.clusters(db))[:3]
    person = ok_json(cli("people", "name", "--cluster", first, "Barack Obama", "--json"))["person_id"]
    joined = cli("people", "name", "--cluster", second, "  barack   OBAMA ")
    assert joined.exit_code == 0, joined.output
    assert joined.stdout.strip() == f"cluster {second} linked to person {person} 'Barack Obama', now 2 clusters"
    shown = ok_json(cli("people", "show", person, "--json"))
    assert {c["id"] for c in shown["clusters"]} == {first, second} and shown["name"] == "Barack Obama"

    other = ok_json(cli("people", "name", "--cluster", third, "Barack Obama", "--new", "--json"))
    assert other["created"] and other["person_id"] != person
    ambiguous = cli("people", "name", "--cluster", list(library.clusters(db))[3], "barack obama")
    assert ambiguous.exit_code == 2 and ambiguous.stdout == ""
    assert ambiguous.stderr.count("\n") == 1 and f"persons {person}, {other['person_id']}" in ambiguous.stderr
    renamed = cli("people", "rename", other["person_id"], "Michelle Obama")
    assert renamed.exit_code == 0


def test_a_face_named_alike_moves_to_the_person(db, library, cli):
    clusters = library.clusters(db)
    first, second = list(clusters)[:2]
    person = ok_json(cli("people", "name", "--cluster", first, "Ada Example", "--json"))["person_id"]
    face = clusters[second][0]
    named = cli("people", "name", "--face", face, "ada example")
    assert named.exit_code == 0, named.output
    assert named.stdout.strip() == f"face {face} linked to person {person} 'Ada Example', now 1 cluster"
    assert ok_json(cli("people", "show", "--face", face, "--json"))["cluster_id"] == first


@pytest.mark.parametrize("bad", ["Eve \x1b[2J", "Bell\x07", "Abc \u202eevil", "Nul\x00", "C1 \x9b", "x" * 201, "   "])
def test_names_with_control_characters_or_too_long_are_refused_and_nothing_stored(db, library, cli, bad):
    cluster = next(iter(library.clusters(db)))
    before = snapshot(db)
    result = cli("people", "name", "--cluster", cluster, bad)
    assert result.exit_code == 2 and result.stdout == "" and result.stderr.count("\n") == 1
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr and "\u202e" not in result.stderr
    assert snapshot(db) == before


def test_a_name_is_trimmed_and_its_spaces_collapsed(db, library, cli):
    cluster = next(iter(library.clusters(db)))
    made = ok_json(cli("people", "name", "--cluster", cluster, "  Grace \t  Hopper  ", "--json"))
    assert made["name"] == "Grace Hopper"
    assert len(ok_json(cli("people", "name", "--cluster", cluster, "y" * 200, "--json"))["name"]) == 200


def test_names_stored_raw_are_printed_escaped_by_every_command(db, library, cli):
    cluster = next(iter(library.clusters(db)))
    person = ok_json(cli("people", "name", "--cluster", cluster, "Placeholder", "--json"))["person_id"]
    with db.connection() as conn:  # as names were stored before they were checked
        conn.execute("UPDATE person SET first_name = %s, last_name = NULL WHERE id = %s", (ESC_NAME, person))
    outputs = [
        cli("people", "show", person),
        cli("people", "list", "--clusters"),
        cli("people", "show", "--cluster", cluster),
        cli("search", "--person", ESC_NAME),
    ]
    for result in outputs:
        assert result.exit_code in (0, 2), result.output
        assert "\x1b" not in result.output and "\x07" not in result.output
    assert "Eve \\x1b[2J\\x07Mallory" in outputs[0].stdout and "Eve \\x1b[2J\\x07Mallory" in outputs[1].stdout


def test_outputs_read_as_facts(db, library, cli):
    clusters = library.clusters(db)
    cluster = next(iter(clusters))
    person = ok_json(cli("people", "name", "--cluster", cluster, "Solo Person", "--json"))["person_id"]
    face = clusters[cluster][0]
    with db.connection() as conn:
        conn.execute("UPDATE person_detection SET age_estimate = 80 WHERE cluster_id = %s", (cluster,))
    listed = cli("people", "list", "--clusters").stdout
    shown = cli("people", "show", person).stdout
    line = next(x for x in listed.splitlines() if x.startswith(f"person {person}:"))
    assert ", 1 cluster, age 80 by the faces" in line
    assert shown.splitlines()[0].endswith("age 80 by the faces")
    moved = cli("people", "move", face, "--unassign").stdout
    assert moved.strip() == f"face {face}: cluster {cluster} -> no cluster"
    face_shown = cli("people", "show", "--face", face).stdout
    assert "no cluster, no person" in face_shown
    for text in (listed, shown, moved, face_shown):
        assert "None" not in text and "80-80" not in text and "1 clusters" not in text


def test_hide_takes_an_id_like_the_other_commands(db, library, cli):
    cluster = next(iter(library.clusters(db)))
    person = ok_json(cli("people", "name", "--cluster", cluster, "Hidden Person", "--json"))["person_id"]
    hidden = cli("people", "hide", person)
    assert hidden.exit_code == 0 and hidden.stdout.strip() == f"person {person}: hidden"
    assert ok_json(cli("people", "show", person, "--json"))["hidden"]


def _undo_round_trip(db, cli, *args) -> dict:
    before = snapshot(db)
    done = ok_json(cli("people", *args, "--json"))
    assert done.get("change_id") is not None
    assert snapshot(db) != before
    undone = cli("people", "undo")
    assert undone.exit_code == 0, undone.output
    assert undone.stdout.startswith(f"undid change {done['change_id']} ")
    assert snapshot(db) == before
    return done


def test_undo_restores_the_exact_state_before_each_kind_of_change(db, library, cli):
    clusters = library.clusters(db)
    first, second, third = list(clusters)[:3]
    keep = ok_json(cli("people", "name", "--cluster", first, "Grace Hopper", "--json"))["person_id"]
    other = ok_json(cli("people", "name", "--cluster", second, "Alan Turing", "--json"))["person_id"]
    _undo_round_trip(db, cli, "name", "--cluster", third, "Ada Lovelace")
    _undo_round_trip(db, cli, "name", "--cluster", third, "grace HOPPER")
    _undo_round_trip(db, cli, "rename", keep, "Grace B. Hopper")
    _undo_round_trip(db, cli, "merge", keep, other)
    _undo_round_trip(db, cli, "move", clusters[first][0], "--cluster", third)
    _undo_round_trip(db, cli, "move", clusters[first][0], "--unassign")
    _undo_round_trip(db, cli, "hide", keep)
    _undo_round_trip(db, cli, "hide", "--cluster", second)
    _undo_round_trip(db, cli, "verify", first)
    _undo_round_trip(db, cli, "unlink", first)
    _undo_round_trip(db, cli, "not", clusters[first][1])
    _undo_round_trip(db, cli, "cannot-link", clusters[first][0], clusters[first][2])
    _undo_round_trip(db, cli, "split", "--cluster", first, "--keep", "1")
    _undo_round_trip(db, cli, "split", "--person", keep, "--keep", "2")


def test_history_lists_changes_and_undo_refuses_under_a_later_change(db, library, cli):
    first = next(iter(library.clusters(db)))
    person = ok_json(cli("people", "name", "--cluster", first, "Grace Hopper", "--by", "ada", "--json"))
    renamed = ok_json(cli("people", "rename", person["person_id"], "Grace Brewster Hopper", "--json"))
    history = cli("people", "history")
    lines = history.stdout.splitlines()
    assert lines[0].startswith(f"change {renamed['change_id']}: ") and "user: name person" in lines[0]
    assert lines[1].startswith(f"change {person['change_id']}: ") and " ada: name cluster" in lines[1]

    refused = cli("people", "undo", person["change_id"])
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert f"change {renamed['change_id']} (" in refused.stderr and "undo change" in refused.stderr
    assert ok_json(cli("people", "undo", "--json"))["undone"] == renamed["change_id"]
    assert ok_json(cli("people", "undo", "--json"))["undone"] == person["change_id"]
    assert cli("people", "show", person["person_id"]).exit_code == 2  # the person made by the naming is gone
    again = cli("people", "undo", person["change_id"])
    assert again.exit_code == 2 and "undone already" in again.stderr
    assert "(undone by change" in cli("people", "history").stdout
