import os
import pwd

import numpy as np
import pytest
from PIL import Image

from photodb.utils.image import ImageError, load_image, save_png
from tests.imaging import exif_bytes, gradient, write_jpeg

LIMIT = 179_000_000


def test_exif_orientation_is_applied_once(tmp_path):
    path = write_jpeg(tmp_path / "rotated.jpg", size=(60, 40), exif=exif_bytes(orientation=6))
    loaded = load_image(path, LIMIT)
    assert loaded.image.size == (40, 60)
    assert loaded.original_size == (40, 60)


def test_sixteen_bit_grayscale_keeps_its_range(tmp_path):
    values = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (8, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    pixels = np.asarray(load_image(path, LIMIT).image)
    assert pixels.shape == (8, 64, 3)
    assert pixels[0, 0, 0] == 0 and pixels[0, -1, 0] == 255 and 120 < pixels[0, 32, 0] < 135


def test_cmyk_becomes_rgb(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path)
    image = load_image(path, LIMIT).image
    assert image.mode == "RGB"
    red, green, blue = image.getpixel((8, 8))
    assert red > 200 and green < 60 and blue < 60


def test_transparency_is_flattened_on_white(tmp_path):
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(path)
    assert load_image(path, LIMIT).image.getpixel((5, 5)) == (255, 255, 255)
    palette = Image.new("P", (10, 10), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "palette.png", transparency=0)
    assert load_image(tmp_path / "palette.png", LIMIT).image.getpixel((5, 5)) == (255, 255, 255)


def test_animated_gif_uses_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), color) for color in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    red, _, blue = load_image(path, LIMIT).image.getpixel((4, 4))
    assert red > 200 and blue < 50


def test_one_pixel_image_is_fine(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (1, 2, 3)).save(path)
    loaded = load_image(path, LIMIT)
    assert loaded.image.size == (1, 1) and loaded.image.getpixel((0, 0)) == (1, 2, 3)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (20_000, 10_000)).save(path, optimize=True)  # 200 Mpx, a few KB on disk
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ImageError, match="decompression bomb guard: 20000x10000"):
        load_image(path, LIMIT)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "file is empty"), (b"hello, this is text", "not a recognised image format")],
)
def test_not_an_image(tmp_path, content, message):
    path = tmp_path / "fake.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_image(path, LIMIT)


def test_truncated_jpeg(tmp_path):
    full = write_jpeg(tmp_path / "full.jpg", size=(400, 300))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 4 // 10])
    with pytest.raises(ImageError, match="truncated"):
        load_image(cut, LIMIT)


def test_dangling_symlink_names_its_target(tmp_path):
    link = tmp_path / "gone.jpg"
    link.symlink_to(tmp_path / "nowhere.jpg")
    with pytest.raises(ImageError, match=r"symbolic link to .*nowhere\.jpg"):
        load_image(link, LIMIT)


def test_resize_scale(tmp_path):
    path = write_jpeg(tmp_path / "big.jpg", size=(400, 300))
    loaded = load_image(path, LIMIT, scale=0.5)
    assert loaded.image.size == (200, 150) and loaded.original_size == (400, 300)


def test_unreadable_file_reports_permission_denied(tmp_path):
    """Run as an unprivileged user: root would read the file regardless of its mode."""
    path = write_jpeg(tmp_path / "secret.jpg")
    path.chmod(0)
    os.chmod(tmp_path, 0o755)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        try:
            if os.geteuid() == 0:
                os.setuid(pwd.getpwnam("nobody").pw_uid)
            load_image(path, LIMIT)
            message = "no error"
        except ImageError as error:
            message = str(error)
        except BaseException as error:
            message = f"unexpected {error!r}"
        os.write(write_end, message.encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read().decode() == "permission denied reading secret.jpg"


def test_save_png_is_atomic_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "out" / "x.png"
    save_png(gradient(16, 16), target, compress_level=1)
    assert Image.open(target).size == (16, 16)
    assert [p.name for p in target.parent.iterdir()] == ["x.png"]


def test_heic_orientation_is_not_applied_twice(tmp_path):
    """pillow-heif rotates while decoding; a second exif_transpose would turn the photo back."""
    path = tmp_path / "portrait.heic"
    from photodb.utils.image import register_formats

    register_formats()
    gradient(60, 40).save(path, exif=exif_bytes(orientation=6), quality=80)
    loaded = load_image(path, LIMIT)
    assert loaded.image.size == (40, 60) and loaded.original_size == (40, 60)


@pytest.mark.parametrize(("fmt", "suffix"), [("WEBP", "webp"), ("TIFF", "tif"), ("BMP", "bmp"), ("PNG", "png")])
def test_common_formats_decode(tmp_path, fmt, suffix):
    path = tmp_path / f"photo.{suffix}"
    gradient(30, 20).save(path, format=fmt)
    loaded = load_image(path, LIMIT)
    assert loaded.image.size == (30, 20) and loaded.image.mode == "RGB" and loaded.format == fmt


def test_mpo_uses_its_first_picture(tmp_path):
    path = tmp_path / "stereo.mpo"
    Image.new("RGB", (20, 20), (250, 0, 0)).save(
        path, format="MPO", save_all=True, append_images=[Image.new("RGB", (20, 20), (0, 0, 250))]
    )
    loaded = load_image(path, LIMIT)
    red, _, blue = loaded.image.getpixel((10, 10))
    assert loaded.format == "MPO" and red > 200 and blue < 50


def test_long_side_is_capped_and_the_scale_is_reported(tmp_path):
    path = write_jpeg(tmp_path / "big.jpg", size=(400, 300))
    loaded = load_image(path, LIMIT, max_side=100)
    assert loaded.image.size == (100, 75) and loaded.original_size == (400, 300)
    assert loaded.scale == 0.25


def test_photos_within_the_cap_are_untouched(tmp_path):
    path = write_jpeg(tmp_path / "small.jpg", size=(300, 200))
    loaded = load_image(path, LIMIT, max_side=300)
    assert loaded.image.size == (300, 200) and loaded.scale == 1.0
    assert np.array_equal(np.asarray(loaded.image), np.asarray(Image.open(path).convert("RGB")))


@pytest.mark.parametrize(
    ("scale", "max_side", "size"),
    [(0.5, 100, (100, 75)), (0.5, 1000, (200, 150)), (0.5, 0, (200, 150)), (1.0, 0, (400, 300))],
)
def test_the_cap_applies_on_top_of_resize_scale(tmp_path, scale, max_side, size):
    path = write_jpeg(tmp_path / "big.jpg", size=(400, 300))
    loaded = load_image(path, LIMIT, scale=scale, max_side=max_side)
    assert loaded.image.size == size and loaded.scale == size[0] / 400


def test_jpeg_is_drafted_in_stored_pixels_before_rotation(tmp_path, monkeypatch):
    """draft() runs on the stored (sideways) frame: the request must not be the upright size."""
    from PIL.JpegImagePlugin import JpegImageFile

    requests: list[tuple[int, int]] = []
    real_draft = JpegImageFile.draft

    def recording_draft(self, mode, size):
        requests.append(size)
        return real_draft(self, mode, size)

    monkeypatch.setattr(JpegImageFile, "draft", recording_draft)
    path = write_jpeg(tmp_path / "sideways.jpg", size=(800, 400), exif=exif_bytes(orientation=6))
    loaded = load_image(path, LIMIT, max_side=100)
    assert requests == [(100, 50)]
    assert loaded.image.size == (50, 100) and loaded.original_size == (400, 800) and loaded.scale == 0.125


def test_drafted_and_capped_image_matches_a_full_decode_resized(tmp_path):
    """DCT-domain downscaling followed by Lanczos stays within a few levels of the careful path."""
    path = write_jpeg(tmp_path / "big.jpg", size=(1600, 1200), seed=3)
    loaded = load_image(path, LIMIT, max_side=300)
    reference = Image.open(path).convert("RGB").resize((300, 225), Image.Resampling.LANCZOS)
    difference = np.abs(np.asarray(loaded.image, np.int16) - np.asarray(reference, np.int16))
    assert loaded.image.size == (300, 225)
    assert difference.mean() < 2.0 and np.percentile(difference, 99) < 12


def test_decompression_bomb_guard_holds_with_a_cap(tmp_path):
    path = tmp_path / "bomb.jpg"
    Image.new("L", (15_000, 12_000)).save(path, quality=10)
    with pytest.raises(ImageError, match="decompression bomb guard: 15000x12000"):
        load_image(path, LIMIT, max_side=2048)
