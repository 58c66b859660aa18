"""The changes the page can make, each one call of the same service functions as `photodb people`
(people.identity, people.face_decisions, people.review, people.undo): form fields in, a one-line
message and the undo log's id of the change out (the page offers to undo it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from photodb.database.connection import Database
from photodb.people import covers, face_decisions, identity, review, split, undo, views
from photodb.utils.terminal import printable
from photodb.web.fields import BadInput, whole_number

#: Who decided, as `photodb people --by` records a person's decision.
BY = "user"

Form = Mapping[str, str]
#: What an action reports: one line, and the change it recorded (None: nothing changed).
Done = tuple[str, int | None]
Action = Callable[[Database, Form, int | None], Done]


class BadForm(BadInput):
    """A field is missing or not a number: one line, nothing written."""


def number(form: Form, field: str) -> int:
    return whole_number(form.get(field, ""), field)


def text(form: Form, field: str) -> str:
    value = form.get(field, "").strip()
    if not value:
        raise BadForm(f"{field} is empty")
    return value


def _name_person(db: Database, form: Form, cid: int | None) -> Done:
    r = identity.name_person(db, number(form, "person_id"), text(form, "name"), by=BY, collection_id=cid)
    return f"person {r['person_id']} is now {r['name']}", r["change_id"]


def _name_cluster(db: Database, form: Form, cid: int | None) -> Done:
    new = form.get("new") == "1"
    r = identity.name_cluster(db, number(form, "cluster_id"), text(form, "name"), by=BY, new=new, collection_id=cid)
    if r["linked"]:
        clusters = f"{r['clusters']} cluster{'' if r['clusters'] == 1 else 's'}"
        return f"cluster {r['cluster_id']} linked to person {r['person_id']} '{r['name']}', now {clusters}", r[
            "change_id"
        ]
    made = " (new)" if r["created"] else ""
    return f"cluster {r['cluster_id']}: person {r['person_id']} {r['name']}{made}", r["change_id"]


def _merge(db: Database, form: Form, cid: int | None) -> Done:
    r = identity.merge_persons(db, number(form, "keep_id"), number(form, "other_id"), by=BY, collection_id=cid)
    return f"person {r['merged_person_id']} merged into person {r['person_id']} {r['name']}", r["change_id"]


def _hide_person(db: Database, form: Form, cid: int | None) -> Done:
    hidden = form.get("hidden", "1") == "1"
    r = identity.hide_person(db, number(form, "person_id"), by=BY, hidden=hidden, collection_id=cid)
    return f"person {r['person_id']} {'hidden' if r['hidden'] else 'shown'}", r["change_id"]


def _hide_cluster(db: Database, form: Form, cid: int | None) -> Done:
    hidden = form.get("hidden", "1") == "1"
    r = identity.hide_cluster(db, number(form, "cluster_id"), by=BY, hidden=hidden, collection_id=cid)
    return f"cluster {r['cluster_id']} {'hidden' if r['hidden'] else 'shown'}", r["change_id"]


def _verify(db: Database, form: Form, cid: int | None) -> Done:
    verified = form.get("verified", "1") == "1"
    r = identity.verify_cluster(db, number(form, "cluster_id"), by=BY, verified=verified, collection_id=cid)
    return f"cluster {r['cluster_id']} {'verified' if r['verified'] else 'not verified'}", r["change_id"]


def _not_this_person(db: Database, form: Form, cid: int | None) -> Done:
    r = face_decisions.reject_face(db, number(form, "face_id"), by=BY, collection_id=cid)
    placed = f"cluster {r['cluster_id']}" if r["cluster_id"] is not None else "no cluster"
    return f"face {r['face_id']} is not cluster {r['rejected_cluster_id']}; now in {placed}", r["change_id"]


def _set_birth_date(db: Database, form: Form, cid: int | None) -> Done:
    """A birth date (YYYY-MM-DD), or none with `clear`: as `photodb people set-birthdate`."""
    value = None if form.get("clear") == "1" else text(form, "birth_date")
    r = identity.set_birth_date(db, number(form, "person_id"), value, by=BY, collection_id=cid)
    born = r["birth_date"] or "unknown (the estimated birth year stands in)"
    return f"person {r['person_id']}: born {born}, {r['estimated']} undated photos estimated", r["change_id"]


def selected_faces(form: Form) -> list[int]:
    """The faces ticked on a page of faces (each checkbox is its own field, face_ID)."""
    faces = sorted(
        {whole_number(k.removeprefix("face_"), "face") for k in form if k.startswith("face_") and k != "face_id"}
    )
    if not faces:
        raise BadForm("no face selected")
    return faces


def _faces_not_this_person(db: Database, form: Form, cid: int | None) -> Done:
    """ "Not this person" for each ticked face: a clustered face as `photodb people not`, a face that
    is the person's by hand only (no cluster) as `people move --unassign`. Each face is its own
    change (a rejection re-places the face in a transaction of its own); Undo reverts the last."""
    faces = selected_faces(form)
    change_id = None
    for face_id in faces:
        if views.show_face(db, face_id, collection_id=cid)["cluster_id"] is not None:
            change_id = face_decisions.reject_face(db, face_id, by=BY, collection_id=cid)["change_id"]
        else:
            change_id = face_decisions.move_face(db, face_id, by=BY, collection_id=cid)["change_id"]
    if len(faces) == 1:
        return f"face {faces[0]} is not this person any more", change_id
    return f"{len(faces)} faces are not this person any more (Undo puts back face {faces[-1]})", change_id


def _faces_move(db: Database, form: Form, cid: int | None) -> Done:
    """The ticked faces to another person, as `photodb people move --person`, in one change."""
    faces, person_id = selected_faces(form), number(form, "to_person_id")
    r = face_decisions.move_faces(db, faces, person_id=person_id, by=BY, collection_id=cid)
    return f"{len(faces)} face{'' if len(faces) == 1 else 's'} moved to person {person_id}", r["change_id"]


def _move_face(db: Database, form: Form, cid: int | None) -> Done:
    """One face (an unsorted one) to a person, as `photodb people move --person`: face_id and
    to_person_id, or both in `suggested` (FACE:PERSON, the value of the suggestion's button)."""
    if "suggested" in form:
        face, _, person = form["suggested"].partition(":")
        form = {"face_id": face, "to_person_id": person}
    r = face_decisions.move_face(
        db, number(form, "face_id"), person_id=number(form, "to_person_id"), by=BY, collection_id=cid
    )
    return f"face {r['face_id']} is now person {r['person_id']}'s", r["change_id"]


def _cover(db: Database, form: Form, cid: int | None) -> Done:
    """The face a person's card shows, as `photodb people cover`."""
    r = covers.set_cover(db, number(form, "person_id"), number(form, "cover_face"), by=BY, collection_id=cid)
    return f"person {r['person_id']} shows face {r['cover_face_id']}", r["change_id"]


def halves_key(plan: split.SplitPlan) -> str:
    """The faces of each half as the page showed them, to refuse a split whose halves changed since."""
    return "|".join(",".join(map(str, sorted(half.detection_ids))) for half in plan.halves)


def _split(db: Database, form: Form, _cid: int | None) -> Done:
    kind = form.get("kind")
    if kind not in ("cluster", "person"):
        raise BadForm(f"kind must be cluster or person, got {kind!r}")
    target = {f"{kind}_id": number(form, "target_id")}
    plan = split.plan_split(db, **target)
    if halves_key(plan) != form.get("halves"):
        raise BadForm("the faces of this cluster changed since the page was shown: look at the halves again")
    r = split.split(db, **target, keep=number(form, "keep"), shown=plan, by=BY)
    made = f"new cluster {r.new_cluster_id}" if r.new_cluster_id else f"new person {r.new_person_id}"
    return f"{kind} {plan.target_id} split: half {r.kept} kept it, the other half is {made}", r.change_id


def _undo(db: Database, form: Form, _cid: int | None) -> Done:
    """As `photodb people undo CHANGE_ID`: the Undo link shown after each change."""
    r = undo.undo(db, number(form, "change_id"), by=BY)
    return f"undid change {r['undone']} ({printable(r['what'])})", r["change_id"]


def _review(decide: Callable[..., review.ReviewResult]) -> Action:
    def action(db: Database, form: Form, _cid: int | None) -> Done:
        r = decide(db, number(form, "candidate_id"), by=BY)
        return f"face {r.detection_id} {r.status} for cluster {r.cluster_id}", r.change_id

    return action


ACTIONS: dict[str, Action] = {
    "name-person": _name_person,
    "name-cluster": _name_cluster,
    "merge": _merge,
    "hide-person": _hide_person,
    "hide-cluster": _hide_cluster,
    "verify": _verify,
    "not-this-person": _not_this_person,
    "faces-not-this-person": _faces_not_this_person,
    "faces-move": _faces_move,
    "move-face": _move_face,
    "cover": _cover,
    "set-birthdate": _set_birth_date,
    "split": _split,
    "accept": _review(review.accept),
    "reject": _review(review.reject),
    "undo": _undo,
}

#: The errors an action reports as one line (nothing was written).
USER_ERRORS: tuple[type[Exception], ...] = (BadInput, identity.PeopleError, review.ReviewError, split.SplitError)


def run(db: Database, name: str, form: Form, collection_id: int | None) -> Done:
    action = ACTIONS.get(name)
    if action is None:
        raise BadForm(f"no action {name!r}")
    return action(db, form, collection_id)
