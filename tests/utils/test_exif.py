from datetime import datetime

import piexif
import pytest

from photodb.utils.exif import date_from_filename, extract_metadata, parse_exif_datetime
from tests.imaging import exif_bytes, gps_block, write_jpeg


def test_date_time_original_wins_over_modification_date(tmp_path):
    path = write_jpeg(tmp_path / "a.jpg", exif=exif_bytes(taken="2006:02:16 21:19:26", modified="2011:01:01 00:00:00"))
    meta = extract_metadata(path)
    assert meta.values["captured_at"] == datetime(2006, 2, 16, 21, 19, 26)
    assert meta.values["captured_at_source"] == "exif:DateTimeOriginal"


def test_offset_time_is_kept_with_the_date(tmp_path):
    path = write_jpeg(tmp_path / "a.jpg", exif=exif_bytes(taken="2021:07:06 16:08:14", offset="+03:00"))
    assert extract_metadata(path).values["captured_at_offset"] == "+03:00"


@pytest.mark.parametrize("garbage", ["0000:00:00 00:00:00", "    :  :     :  :  ", "2019:13:45 10:00:00", "yesterday"])
def test_garbage_dates_are_not_stored_and_are_noted(tmp_path, garbage):
    path = write_jpeg(tmp_path / "a.jpg", exif=exif_bytes(taken=garbage, digitized="2015:05:05 05:05:05"))
    meta = extract_metadata(path)
    assert meta.values["captured_at"] == datetime(2015, 5, 5, 5, 5, 5)
    assert meta.values["captured_at_source"] == "exif:DateTimeDigitized"
    assert any("DateTimeOriginal" in note for note in meta.notes)


def test_trailing_junk_after_a_valid_date_is_ignored():
    assert parse_exif_datetime("2009:09:09 20:27:09.60:04:00") == datetime(2009, 9, 9, 20, 27, 9)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("IMG_20190714_153012.jpg", datetime(2019, 7, 14, 15, 30, 12)),
        ("PXL_20230102_030405123.jpg", datetime(2023, 1, 2, 3, 4, 5)),
        ("IMG-20200101-WA0001.jpg", datetime(2020, 1, 1)),
        ("Screenshot_2021-05-06-07-08-09.png", datetime(2021, 5, 6, 7, 8, 9)),
        ("2018-03-04 10.11.12.jpg", datetime(2018, 3, 4, 10, 11, 12)),
        ("holiday.jpg", None),
        ("IMG_20191399_999999.jpg", None),
    ],
)
def test_filename_dates(name, expected):
    assert date_from_filename(name) == expected


def test_filename_date_is_the_fallback_and_says_so(tmp_path):
    meta = extract_metadata(write_jpeg(tmp_path / "PXL_20230102_030405123.jpg"))
    assert meta.values["captured_at"] == datetime(2023, 1, 2, 3, 4, 5)
    assert meta.values["captured_at_source"] == "filename"


def test_gps_becomes_signed_decimal_degrees(tmp_path):
    path = write_jpeg(tmp_path / "a.jpg", exif=exif_bytes(gps=gps_block(-33.8568, 151.2153)))
    values = extract_metadata(path).values
    assert values["latitude"] == pytest.approx(-33.8568, abs=1e-5)
    assert values["longitude"] == pytest.approx(151.2153, abs=1e-5)


def test_absurd_latitude_is_dropped_and_noted(tmp_path):
    gps = gps_block(10, 20)
    gps[piexif.GPSIFD.GPSLatitude] = ((95, 1), (0, 1), (0, 1))
    meta = extract_metadata(write_jpeg(tmp_path / "a.jpg", exif=exif_bytes(gps=gps)))
    assert meta.values["latitude"] is None and meta.values["longitude"] is None
    assert any("out of range" in note for note in meta.notes)


def test_zero_denominator_rationals_are_dropped_not_crashing(tmp_path):
    gps = gps_block(10, 20)
    gps[piexif.GPSIFD.GPSLongitude] = ((20, 0), (0, 1), (0, 1))
    extra = {piexif.ExifIFD.FNumber: (28, 0), piexif.ExifIFD.ExposureTime: (1, 0)}
    meta = extract_metadata(write_jpeg(tmp_path / "a.jpg", exif=exif_bytes(gps=gps, exif_extra=extra)))
    assert meta.values["latitude"] is None
    assert meta.values["aperture"] is None and meta.values["exposure_time"] is None
    assert any("zero denominator" in note for note in meta.notes)
    assert meta.extra["Exif"]["FNumber"] is None


def test_nul_and_invalid_utf8_strings_are_sanitised(tmp_path):
    path = write_jpeg(tmp_path / "a.jpg", exif=exif_bytes(make=b"Ca\x00non\xff\xfe", model=b"\xc3(\xa0 X\x00"))
    meta = extract_metadata(path)
    assert "\x00" not in meta.values["camera_make"] and meta.values["camera_make"].startswith("Canon")
    assert "\x00" not in meta.values["camera_model"]
    assert "\x00" not in str(meta.extra)


def test_camera_fields_and_every_tag_in_extra(tmp_path):
    extra = {
        piexif.ExifIFD.FNumber: (28, 10),
        piexif.ExifIFD.ISOSpeedRatings: 400,
        piexif.ExifIFD.FocalLength: (50, 1),
        piexif.ExifIFD.LensModel: b"EF50mm f/1.8",
    }
    path = write_jpeg(tmp_path / "a.jpg", exif=exif_bytes(make="Canon", model="EOS", exif_extra=extra))
    values = extract_metadata(path).values
    assert (values["aperture"], values["iso"], values["focal_length"], values["lens_model"]) == (
        2.8,
        400,
        50.0,
        "EF50mm f/1.8",
    )
    assert extract_metadata(path).extra["Exif"]["LensModel"] == "EF50mm f/1.8"


def test_png_and_webp_exif_is_read(tmp_path):
    from tests.imaging import gradient

    for fmt in ("PNG", "WEBP"):
        path = tmp_path / f"a.{fmt.lower()}"
        gradient(32, 32).save(path, format=fmt, exif=exif_bytes(taken="2012:12:12 12:12:12"))
        assert extract_metadata(path).values["captured_at"] == datetime(2012, 12, 12, 12, 12, 12)
