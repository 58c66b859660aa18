import os
from pathlib import Path

import pytest
from PIL import Image

from photodb.processors.local_processor import LocalProcessor, RunError, RunOptions
from tests.imaging import exif_bytes, gps_block, make_library, write_jpeg
from tests.samples import SAMPLES, manifest

LOCAL = ["normalize", "metadata"]


def run(settings, db, root, **options):
    return LocalProcessor(settings, db, RunOptions(stages=options.pop("stages", LOCAL), **options)).run(root)


def statuses(db):
    with db.connection() as conn:
        return {
            (filename, stage): (status, error)
            for filename, stage, status, error in conn.execute(
                """SELECT p.filename, s.stage, s.status, s.error_message
                   FROM processing_status s JOIN photo p ON p.id = s.photo_id WHERE s.stage = ANY(%s)""",
                (LOCAL,),
            )
        }


def test_a_folder_is_indexed_and_normalized(settings, db, tmp_path):
    make_library(tmp_path / "lib", 6, size=(120, 80))
    summary = run(settings, db, tmp_path / "lib", parallel=2)
    assert summary.discovered == 6 and summary.new == 6
    assert {s: (x.completed, x.failed) for s, x in summary.stages.items()} == {"normalize": (6, 0), "metadata": (6, 0)}
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT filename, normalized_path, width, height, normalized_width FROM photo ORDER BY filename"
        ).fetchall()
        dates = conn.execute("SELECT count(*) FROM metadata WHERE captured_at IS NOT NULL").fetchone()[0]
    assert rows[0][0] == "album0/photo_0000.jpg"
    for _, normalized, width, height, normalized_width in rows:
        png = settings.images_dir / normalized
        assert Image.open(png).size == (120, 80) == (width, height) and normalized_width == 120
    assert dates == 6


def test_rerun_without_force_does_nothing_and_force_redoes(settings, db, tmp_path):
    make_library(tmp_path / "lib", 4)
    run(settings, db, tmp_path / "lib")
    again = run(settings, db, tmp_path / "lib")
    assert again.unchanged == 4 and again.new == 0
    assert all(s.completed == 0 and s.unchanged == 4 for s in again.stages.values())
    forced = run(settings, db, tmp_path / "lib", force=True)
    assert all(s.completed == 4 for s in forced.stages.values())
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM photo").fetchone()[0] == 4
        assert conn.execute("SELECT count(*) FROM metadata").fetchone()[0] == 4


def test_a_changed_file_is_reprocessed_and_only_it(settings, db, tmp_path):
    paths = make_library(tmp_path / "lib", 3)
    run(settings, db, tmp_path / "lib")
    write_jpeg(paths[1], size=(50, 50), seed=99, exif=exif_bytes(taken="2001:01:01 01:01:01"))
    summary = run(settings, db, tmp_path / "lib")
    assert (summary.changed, summary.unchanged) == (1, 2)
    assert summary.stages["normalize"].completed == 1
    with db.connection() as conn:
        width, captured = conn.execute(
            "SELECT width, m.captured_at FROM photo JOIN metadata m ON m.photo_id = id WHERE filename = %s",
            ("album1/photo_0001.jpg",),
        ).fetchone()
    assert width == 50 and captured.year == 2001


def test_touched_but_identical_file_is_not_reprocessed(settings, db, tmp_path):
    paths = make_library(tmp_path / "lib", 2)
    run(settings, db, tmp_path / "lib")
    os.utime(paths[0], (1_000_000_000, 1_000_000_000))
    summary = run(settings, db, tmp_path / "lib")
    assert summary.unchanged == 2 and summary.stages["normalize"].completed == 0


def test_subfolder_runs_only_its_photos_and_foreign_folders_are_refused(settings, db, tmp_path):
    make_library(tmp_path / "lib", 4)
    run(settings, db, tmp_path / "lib" / "album0")
    summary = run(settings, db, tmp_path / "lib")
    assert summary.stages["normalize"].completed == 2 and summary.stages["normalize"].unchanged == 2
    (tmp_path / "other").mkdir()
    with pytest.raises(RunError, match="--collection"):
        run(settings, db, tmp_path / "other")
    assert run(settings, db, tmp_path / "other", collection="other").discovered == 0


def test_dry_run_reports_without_writing(settings, db, tmp_path):
    make_library(tmp_path / "lib", 3)
    summary = run(settings, db, tmp_path / "lib", dry_run=True)
    assert summary.new == 3 and summary.stages["normalize"].completed == 3
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM photo").fetchone()[0] == 0


def test_max_photos_limits_discovery(settings, db, tmp_path):
    make_library(tmp_path / "lib", 5)
    assert run(settings, db, tmp_path / "lib", max_photos=2).discovered == 2


def _bad_library(root: Path) -> dict[str, str | None]:
    """File name -> expected normalize error fragment (None: must complete)."""
    root.mkdir(parents=True)
    expected: dict[str, str | None] = {}
    write_jpeg(root / "good.jpg", seed=1)
    expected["good.jpg"] = None
    (root / "zero.jpg").write_bytes(b"")
    expected["zero.jpg"] = "file is empty"
    full = write_jpeg(root / "tmp_full.jpg", size=(300, 200)).read_bytes()
    (root / "tmp_full.jpg").unlink()
    (root / "truncated.jpg").write_bytes(full[: len(full) * 4 // 10])
    expected["truncated.jpg"] = "truncated"
    (root / "text.jpg").write_text("just some words")
    expected["text.jpg"] = "not a recognised image format"
    Image.new("1", (20_000, 10_000)).save(root / "bomb.png", optimize=True)
    expected["bomb.png"] = "decompression bomb guard"
    write_jpeg(root / "garbage_exif.jpg", exif=exif_bytes(make=b"Ca\x00n\xff", taken="0000:00:00 00:00:00"))
    expected["garbage_exif.jpg"] = None
    gps = gps_block(1, 1)
    gps[0x0002] = ((95, 1), (0, 0), (0, 1))
    write_jpeg(root / "absurd_gps.jpg", exif=exif_bytes(gps=gps, exif_extra={0x829D: (1, 0)}))
    expected["absurd_gps.jpg"] = None
    odd_name = os.fsdecode(b"caf\xe9_latin1.jpg")
    write_jpeg(root / odd_name, seed=3)
    expected["caf\\xe9_latin1.jpg"] = None
    (root / "loop").mkdir()
    (root / "loop" / "back").symlink_to(root, target_is_directory=True)
    (root / "dangling.jpg").symlink_to(root / "does-not-exist.jpg")
    expected["dangling.jpg"] = "symbolic link"
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:])
    expected["anim.gif"] = None
    Image.new("RGB", (1, 1)).save(root / "dot.png")
    expected["dot.png"] = None
    (root / "notes.txt").write_text("not a photo")
    return expected


def test_bad_input_is_recorded_per_photo_and_the_run_goes_on(settings, db, tmp_path):
    expected = _bad_library(tmp_path / "bad")
    summary = run(settings, db, tmp_path / "bad", parallel=2)
    assert summary.symlink_loops >= 1 and summary.ignored_files >= 1
    found = statuses(db)
    for name, fragment in expected.items():
        status, error = found[(name, "normalize")]
        if fragment is None:
            assert (status, error) == ("completed", None), name
        else:
            assert status == "failed" and fragment in error, (name, error)
    assert all(status in ("completed", "failed") for status, _ in found.values())
    assert found[("truncated.jpg", "metadata")][0] == "completed"  # its header still has EXIF
    with db.connection() as conn:
        make, lat = conn.execute(
            "SELECT camera_make, latitude FROM metadata m JOIN photo p ON p.id = m.photo_id "
            "WHERE p.filename IN ('garbage_exif.jpg', 'absurd_gps.jpg') ORDER BY p.filename DESC"
        ).fetchall()[0]
    assert make.startswith("Ca") and "\x00" not in make and lat is None


def test_public_samples_match_their_manifest(settings, db):
    entries = list(manifest().values())
    run(settings, db, SAMPLES, parallel=2)
    found = statuses(db)
    with db.connection() as conn:
        facts = {
            row[0]: row[1:]
            for row in conn.execute(
                """SELECT p.filename, p.width, p.height, m.captured_at, m.latitude, m.longitude
                   FROM photo p LEFT JOIN metadata m ON m.photo_id = p.id"""
            )
        }
    for entry in entries:
        name = entry["path"]
        status, error = found[(name, "normalize")]
        if entry["expect"] != "ok":
            assert status == "failed" and error, name
            continue
        assert status == "completed", (name, error)
        width, height, captured, latitude, longitude = facts[name]
        assert (width, height) == (entry["width"], entry["height"]), name
        accepted = {entry.get("date_taken"), *(entry.get("date_alternatives") or [])}
        assert (captured.isoformat() if captured else None) in accepted, (name, captured)
        if entry.get("gps"):
            assert latitude == pytest.approx(entry["gps"]["lat"], abs=1e-4), name
            assert longitude == pytest.approx(entry["gps"]["lon"], abs=1e-4), name
        else:
            assert latitude is None, name
    assert len(entries) == len(facts) == 17


def test_expired_claim_of_another_host_is_taken_over(settings, db, tmp_path):
    make_library(tmp_path / "lib", 2)
    run(settings, db, tmp_path / "lib")
    with db.connection() as conn:
        conn.execute(
            """UPDATE processing_status SET status = 'processing', claimed_by = 'elsewhere:1:1',
                   claimed_at = now() - interval '2 hours' WHERE stage = 'normalize'"""
        )
        conn.execute(
            """UPDATE processing_status SET status = 'processing', claimed_by = 'elsewhere:2:2',
                   claimed_at = now() WHERE stage = 'metadata'"""
        )
    summary = LocalProcessor(
        settings.model_copy(update={"processing_lease_seconds": 3600}), db, RunOptions(stages=["normalize"])
    ).run(tmp_path / "lib")
    assert summary.stages["normalize"].completed == 2
    with db.connection() as conn:
        live = conn.execute("SELECT count(*) FROM processing_status WHERE claimed_by = 'elsewhere:2:2'").fetchone()
    assert live[0] == 2, "a claim within its lease on another host is left alone"
