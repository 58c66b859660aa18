"""What `photodb people` prints: facts as a person reads them ("1 cluster", no None, one age
figure) with every stored text through utils.terminal.printable."""

from __future__ import annotations

from typing import Any

from photodb.utils.terminal import printable


def plural(count: int, word: str) -> str:
    """'1 cluster', '3 clusters'."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def counts(row: dict[str, Any]) -> str:
    return f"{plural(row['faces'], 'face')}, {plural(row['photos'], 'photo')}"


def ages(age_range: list[int] | None) -> str:
    """The one age figure of list and show: what the faces' age estimates say (youngest-oldest)."""
    if not age_range:
        return ""
    low, high = age_range
    return f", age {low} by the faces" if low == high else f", age {low}-{high} by the faces"


def hidden(row: dict[str, Any]) -> str:
    return " (hidden)" if row.get("hidden") else ""


def describe_shown(r: dict[str, Any]) -> str:
    if "face_list" in r:
        head = f"cluster {r['id']}: {counts(r)}{ages(r['age_range'])}"
        head += f", person {r['person_id']} {printable(r['person'])}" if r["person_id"] else ", no person"
        head += (" verified" if r["verified"] else "") + hidden(r)
        faces = (
            f"  face {f['id']} ({f['status'] or 'unassigned'}): {printable(f['photo_path'])}" for f in r["face_list"]
        )
        return "\n".join([head, *faces])
    if "photo_path" in r:
        cluster = f"cluster {r['cluster_id']}" if r["cluster_id"] is not None else "no cluster"
        person = f"person {r['person_id']}" if r["person_id"] is not None else "no person"
        return (
            f"face {r['id']}: {cluster}, {person}, {r['status'] or 'unassigned'}: {printable(r['photo_path'])}"
            f"\n  must-link {ids(r['must_link'])}  cannot-link {ids(r['cannot_link'])}"
        )
    born = f", born ~{r['estimated_birth_year']}" if r["estimated_birth_year"] is not None else ""
    gender = f", gender {r['gender']}" if r["gender"] else ""
    lines = [f"person {r['id']}: {printable(r['name'])}: {counts(r)}{ages(r['age_range'])}{born}{gender}{hidden(r)}"]
    lines += [
        f"  cluster {c['id']}: {plural(c['faces'], 'face')}  {printable(c['sample_path'])}" for c in r["clusters"]
    ]
    lines += [f"  photo {printable(path)}" for path in r["photo_paths"]]
    lines += [
        f"  age {a['age']} in photo {a['photo_id']} ({when(a)})" for a in r.get("ages", []) if a["age"] is not None
    ]
    return "\n".join(lines)


def ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids)) or "none"


def when(age: dict[str, Any]) -> str:
    if age["captured_at"] is not None:
        return f"{age['captured_at']:%Y-%m-%d}"
    return f"about {age['estimated_year']:.0f}, estimated"


def describe_naming(r: dict[str, Any]) -> str:
    """'cluster 12 linked to person 4 'Ada Example', now 3 clusters', or the person as named."""
    name = printable(r["name"])
    if r.get("linked"):
        what = f"face {r['face_id']}" if "face_id" in r else f"cluster {r['cluster_id']}"
        return f"{what} linked to person {r['person_id']} '{name}', now {plural(r['clusters'], 'cluster')}"
    if "face_id" in r:
        return f"face {r['face_id']}: new person {r['person_id']} '{name}'"
    return f"person {r['person_id']}: {name}{' (new)' if r['created'] else ''}"


def cluster(cluster_id: int | None) -> str:
    return f"cluster {cluster_id}" if cluster_id is not None else "no cluster"


def describe_history(result: dict[str, Any]) -> str:
    lines = []
    for c in result["changes"]:
        state = f" (undone by change {c['undone_by']})" if c["undone_by"] is not None else ""
        lines.append(
            f"change {c['id']}: {c['at']:%Y-%m-%d %H:%M:%S} {printable(c['by'])}: {printable(c['what'])}{state}"
        )
    return "\n".join(lines) or "no changes yet"


def describe_unsorted(result: dict[str, Any]) -> str:
    lines = []
    for face in result["faces"]:
        near = face["nearest_person"]
        hint = (
            f"nearest: person {near['person_id']} {printable(near['name'])} (distance {near['distance']:.2f}); "
            f"`photodb people move {face['id']} --person {near['person_id']}`"
            if near
            else f"no person to suggest yet: `photodb people name --face {face['id']} NAME` or `photodb web`"
        )
        issue = f", {face['quality_issue']}" if face["quality_issue"] else ""
        size = f"{face['size'][0]}x{face['size'][1]} px{issue}"
        lines.append(f"face {face['id']} ({size}) {printable(face['photo_path'])}: {hint}")
    if not lines:
        return "no unsorted faces: every face is in a cluster"
    if len(result["faces"]) < result["faces_total"]:
        lines.append(f"({len(result['faces'])} of {result['faces_total']} unsorted faces; --limit 0 lists all)")
    return "\n".join(lines)
