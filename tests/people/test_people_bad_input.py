"""Bad input to `photodb people`: unknown ids, self-links, contradicting constraints, merging a person
into itself, a face of another collection: one clear line, exit 2, nothing written."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from photodb.database.clustering import faces as face_db
from tests.people.conftest import ok_json, snapshot

UNKNOWN = 987654


@pytest.fixture
def state(db, library, cli) -> dict[str, Any]:
    """A named person, a cannot-link inside its cluster, a chain of must-links, a face of another
    collection and a face pinned outside every cluster."""
    clusters = library.clusters(db)
    first, second, third = list(clusters)[:3]
    person = ok_json(cli("people", "name", "--cluster", first, "Grace Hopper", "--json"))["person_id"]
    a, b = clusters[first][:2]
    ok_json(cli("people", "cannot-link", a, b, "--json"))
    c, d, e = clusters[second][:3]
    ok_json(cli("people", "must-link", c, d, "--json"))
    ok_json(cli("people", "must-link", d, e, "--json"))
    loose = clusters[third][0]
    ok_json(cli("people", "move", loose, "--unassign", "--json"))
    with db.connection() as conn:
        conn.execute("INSERT INTO collection (name) VALUES ('other')")
        (foreign,) = face_db.insert_faces(conn, 2, np.eye(512, dtype=np.float32)[:1], "arcface", photo_prefix="o")
        (dlib,) = face_db.insert_faces(conn, 1, np.eye(512, dtype=np.float32)[1:2], "dlib", photo_prefix="d")
    return {
        "P": person,
        "C": first,
        "C2": second,
        "a": a,
        "b": b,
        "c": c,
        "d": d,
        "e": e,
        "loose": loose,
        "foreign": foreign,
        "dlib": dlib,
        "X": UNKNOWN,
    }


CASES = [
    (["show", "X"], "no person"),
    (["show", "--cluster", "X"], "no cluster"),
    (["show", "--face", "X"], "no face"),
    (["name", "X", "Ada Lovelace"], "no person"),
    (["name", "--cluster", "X", "Ada Lovelace"], "no cluster"),
    (["name", "P", "   "], "cannot be empty"),
    (["link", "X", "P"], "no cluster"),
    (["link", "C2", "X"], "no person"),
    (["unlink", "X"], "no cluster"),
    (["verify", "X"], "no cluster"),
    (["hide", "--person", "X"], "no person"),
    (["hide", "--cluster", "X"], "no cluster"),
    (["merge", "P", "P"], "into itself"),
    (["merge", "P", "X"], "no person"),
    (["merge", "X", "P"], "no person"),
    (["move", "X", "--cluster", "C"], "no face"),
    (["move", "a", "--cluster", "X"], "no cluster"),
    (["move", "a", "--person", "X"], "no person"),
    (["move", "foreign", "--cluster", "C"], "different collections"),
    (["move", "dlib", "--cluster", "C"], "different models"),
    (["not", "X"], "no face"),
    (["not", "loose"], "in no cluster"),
    (["not", "c"], "must-linked"),
    (["must-link", "a", "a"], "itself"),
    (["cannot-link", "a", "a"], "itself"),
    (["must-link", "a", "X"], "no face"),
    (["must-link", "a", "b"], "contradict the cannot-link"),
    (["cannot-link", "c", "e"], "must-linked"),
    (["must-link", "a", "foreign"], "different collections"),
    (["must-link", "a", "dlib"], "different embedding models"),
    (["--collection", "default", "move", "foreign", "--unassign"], "another collection"),
    (["--collection", "other", "show", "P"], "another collection"),
    (["--collection", "other", "verify", "C"], "another collection"),
    (["--collection", "nowhere", "list"], "no collection named 'nowhere'"),
    # bad usage that click itself finds: one line too, naming the command to ask for help
    (["show", "--cluster", "x"], "'x' is not a valid integer"),
    (["name", "--cluster", "x", "Ada Lovelace"], "'x' is not a valid integer"),
    (["link", "x", "P"], "'x' is not a valid integer"),
    (["merge", "P"], "Missing argument"),
    (["move", "a", "--cluster", "x"], "(see photodb people move --help)"),
    (["move", "a"], "give one of --cluster, --person or --unassign"),
    (["hide", "--person", "P", "--cluster", "C"], "give one of PERSON_ID, --person or --cluster"),
    (["show", "P", "--face", "a"], "give one of PERSON_ID, --cluster or --face"),
    (["split", "--cluster", "x"], "'x' is not a valid integer"),
    (["review", "--accept", "x"], "not a valid integer"),
    (["list", "--limit", "-1"], "--limit"),
    (["list", "--bogus"], "No such option"),
    (["verify", "C", "--by", "auto:x"], "automatic work"),
    (["set-birthdate", "P", "1990-01-01", "--clear"], "give a birth date"),
    (["nosuch"], "No such command 'nosuch'"),
]


def _argv(case: list[str], state: dict[str, Any]) -> list[str]:
    """Placeholders to ids; a leading --collection NAME goes after the subcommand's arguments."""
    prefix: list[str] = []
    if case[0] == "--collection":
        prefix, case = case[:2], case[2:]
    return ["people", *(str(state.get(word, word)) for word in case), *prefix]


@pytest.mark.parametrize(("case", "message"), CASES, ids=lambda v: str(v))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(db, state, cli, case, message):
    before = snapshot(db)
    result = cli(*_argv(case, state))
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert snapshot(db) == before


def test_contradicting_must_link_through_a_chain_is_refused(db, state, cli):
    """a-b cannot; c-d-e must: must-linking b to c is fine, then a to e joins a and b's sets."""
    ok_json(cli("people", "must-link", state["b"], state["c"], "--json"))
    before = snapshot(db)
    result = cli("people", "must-link", state["a"], state["e"])
    assert result.exit_code == 2 and "contradict the cannot-link" in result.stderr
    assert snapshot(db) == before


def test_a_move_into_a_cluster_holding_a_cannot_linked_face_is_refused(db, state, cli):
    result = cli("people", "move", state["b"], "--cluster", state["C2"])
    assert result.exit_code == 0, result.stderr  # the control: a plain move works
    ok_json(cli("people", "cannot-link", state["loose"], state["c"], "--json"))
    before = snapshot(db)
    refused = cli("people", "move", state["loose"], "--cluster", state["C2"])
    assert refused.exit_code == 2 and "cannot-link with its face" in refused.stderr
    assert snapshot(db) == before


def test_by_cannot_claim_to_be_automatic_work(db, state, cli):
    before = snapshot(db)
    result = cli("people", "verify", state["C"], "--by", "auto:associate")
    assert result.exit_code == 2 and "automatic work" in result.stderr
    assert snapshot(db) == before
