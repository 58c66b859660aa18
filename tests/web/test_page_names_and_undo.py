"""The page's naming and undo (issue 22 §3) over HTTP: a bad name is a form error (400 with the
message, nothing stored), a name a person has links the cluster to them, and every change ends
with an Undo control that reverts it through the same people.undo as `photodb people undo`."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus as unquote

from tests.web.test_http import post, scalar, token_of


def test_a_bad_name_is_a_form_error_and_stores_nothing(client, world, db):
    token = token_of(client)
    cyd = world.clusters["cyd"]
    for bad in ("Eve \x1b[2J", "Ring\x07", "x\u202ey", "n" * 201):
        refused = post(client, "name-cluster", token, cluster_id=cyd, name=bad)
        assert refused.status_code == 400
        assert "control characters" in refused.text or "at most 200 characters" in refused.text
    assert scalar(db, "SELECT person_id FROM cluster WHERE id = %s", cyd) is None
    assert scalar(db, "SELECT count(*) FROM person") == 2
    assert scalar(db, "SELECT count(*) FROM people_change") == 0


def test_a_name_a_person_has_links_the_cluster_and_undo_reverts_it(client, world, db):
    token = token_of(client)
    cyd = world.clusters["cyd"]
    linked = post(client, "name-cluster", token, cluster_id=cyd, name="  bob ", next="/")
    assert linked.status_code == 303
    message = unquote(linked.headers["location"])
    assert f"cluster {cyd} linked to person {world.bob_person} 'Bob', now 2 clusters" in message
    assert scalar(db, "SELECT person_id FROM cluster WHERE id = %s", cyd) == world.bob_person

    page = client.get(linked.headers["location"]).text
    form = re.search(r'<form method="post" action="/action/undo".*?</form>', page, re.S)
    assert form and f'name="token" value="{token}"' in form.group(0)
    change = re.search(r'name="change_id" value="(\d+)"', form.group(0))
    assert change is not None

    assert post(client, "undo", None, change_id=change.group(1)).status_code == 403  # the token is still needed
    undone = post(client, "undo", token, change_id=change.group(1), next="/")
    assert undone.status_code == 303 and "undid change" in unquote(undone.headers["location"])
    assert scalar(db, "SELECT person_id FROM cluster WHERE id = %s", cyd) is None
    again = post(client, "undo", token, change_id=change.group(1))
    assert again.status_code == 400 and "undone already" in again.text
