"""The normalize stage: capped copies and the scale that maps their boxes back to the original."""

from __future__ import annotations

from PIL import Image

from photodb.processors.local_processor import LocalProcessor, RunOptions
from tests.imaging import exif_bytes, write_jpeg


def test_large_photos_are_capped_small_ones_kept_and_the_scale_is_stored(settings, db, tmp_path):
    library = tmp_path / "lib"
    write_jpeg(library / "large.jpg", size=(1200, 900))
    write_jpeg(library / "portrait.jpg", size=(1000, 500), exif=exif_bytes(orientation=8))
    write_jpeg(library / "small.jpg", size=(320, 240))
    capped = settings.model_copy(update={"normalize_max_side": 400})
    summary = LocalProcessor(capped, db, RunOptions(stages=["normalize"], parallel=2)).run(library)
    assert summary.stages["normalize"].completed == 3
    with db.connection() as conn:
        rows = {
            name: (path, (w, h), (nw, nh), scale)
            for name, path, w, h, nw, nh, scale in conn.execute(
                """SELECT filename, normalized_path, width, height, normalized_width, normalized_height,
                          normalized_scale FROM photo"""
            )
        }
    assert {name: row[1:] for name, row in rows.items()} == {
        "large.jpg": ((1200, 900), (400, 300), 1 / 3),
        "portrait.jpg": ((500, 1000), (200, 400), 0.4),
        "small.jpg": ((320, 240), (320, 240), 1.0),
    }
    for path, _, normalized_size, _ in rows.values():
        assert Image.open(settings.images_dir / path).size == normalized_size
    # A box in normalized pixels maps back to the original through the stored scale.
    _, original, _, scale = rows["large.jpg"]
    assert tuple(round(v / scale) for v in (100, 50, 400, 300)) == (300, 150, *original)
