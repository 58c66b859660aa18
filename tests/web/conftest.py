"""A small generated library for the web page: three identities clustered by a bootstrap, two of
them linked to persons, a face between two clusters waiting for review, and a normalized PNG with
a drawn face in its stored box for every detection (so thumbnails are real crops)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw
from starlette.testclient import TestClient

from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.incremental import assign_new_faces
from photodb.config import Settings
from photodb.database.connection import Database
from photodb.web import security
from photodb.web.app import WebContext, create_app
from photodb.web.thumbnails import cache_dir
from tests.cli import PHOTODB, cli_env
from tests.people.identities import identity, make_person, store
from tests.web.browsing import CHROMEDRIVER, CHROMIUM, DESKTOP, free_port, set_viewport

#: The address the tests' browser believes it talks to.
ORIGIN = "http://127.0.0.1:8765"

#: The face box of every generated photo, in pixels of its 160x120 normalized PNG.
BOX = (50, 20, 60, 70)
COLOURS = {"ada": (200, 60, 60), "bob": (60, 160, 60), "cyd": (60, 60, 200)}


@dataclass
class World:
    faces: dict[str, list[int]]
    clusters: dict[str, int]
    ada_person: int
    bob_person: int
    pending_face: int


def draw_face(path: Path, colour: tuple[int, int, int]) -> None:
    image = Image.new("RGB", (160, 120), (235, 235, 225))
    x, y, w, h = BOX
    draw = ImageDraw.Draw(image)
    draw.ellipse((x, y, x + w, y + h), fill=colour)
    draw.ellipse((x + 15, y + 22, x + 23, y + 30), fill=(0, 0, 0))
    draw.ellipse((x + 37, y + 22, x + 45, y + 30), fill=(0, 0, 0))
    draw.arc((x + 15, y + 35, x + 45, y + 58), 20, 160, fill=(0, 0, 0), width=3)
    image.save(path)


def give_images(db: Database, images_dir: Path, faces: list[int], colour: tuple[int, int, int]) -> None:
    images_dir.mkdir(parents=True, exist_ok=True)
    with db.connection() as conn:
        for face in faces:
            name = f"face-{face}.png"
            draw_face(images_dir / name, colour)
            conn.execute(
                """UPDATE photo SET normalized_path = %s, normalized_width = 160, normalized_height = 120
                   WHERE id = (SELECT photo_id FROM person_detection WHERE id = %s)""",
                (name, face),
            )
            conn.execute(
                """UPDATE person_detection SET face_bbox_x = %s, face_bbox_y = %s, face_bbox_width = %s,
                   face_bbox_height = %s WHERE id = %s""",
                (*BOX, face),
            )


@pytest.fixture
def world(db: Database, settings: Settings) -> World:
    rng = np.random.default_rng(14)
    vectors = {name: identity(rng, 6, spread=0.2) for name in COLOURS}
    faces = {name: store(db, v) for name, v in vectors.items()}
    bootstrap(db, min_cluster_size=3, min_samples=2)
    between = vectors["ada"].mean(0) + vectors["bob"].mean(0)
    (pending,) = store(db, (between / np.linalg.norm(between))[None, :])
    with db.connection() as conn:  # tier 2 decides, as in tests/people/test_review.py: a pending pair
        conn.execute("UPDATE hdbscan_run SET clusterer_state = NULL")
    assert assign_new_faces(db, [pending], force=True).outcomes == {"pending": 1}
    with db.connection() as conn:
        clusters = {
            name: conn.execute("SELECT cluster_id FROM person_detection WHERE id = %s", (ids[0],)).fetchone()[0]
            for name, ids in faces.items()
        }
    ada, bob = make_person(db, None), make_person(db, "Bob")
    with db.connection() as conn:
        for person, cluster in ((ada, clusters["ada"]), (bob, clusters["bob"])):
            conn.execute("UPDATE cluster SET person_id = %s WHERE id = %s", (person, cluster))
    for name, ids in faces.items():
        give_images(db, settings.images_dir, ids, COLOURS[name])
    give_images(db, settings.images_dir, [pending], (150, 110, 60))
    return World(faces, clusters, ada, bob, pending)


@dataclass(frozen=True)
class Server:
    url: str  # the clean address
    printed: str  # the address `photodb web` printed, with its token


@pytest.fixture
def server(tmp_path: Path, database_url: str, settings: Settings, world: World) -> Iterator[Server]:
    """`photodb web` in its own process; ready once it printed its address (its socket is listening)."""
    port = free_port()
    env = cli_env(tmp_path, database_url, PHOTODB_HOME=str(settings.photodb_home), IMG_PATH=str(settings.img_path))
    process = subprocess.Popen(
        [PHOTODB, "web", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # ends when the server exits: then it failed to start
            seen.append(line)
            printed = re.search(rf"http://127\.0\.0\.1:{port}/\?token=[\w-]+", line)
            if printed:
                break
        else:
            pytest.fail(f"photodb web did not start: {''.join(seen)}")
        yield Server(f"http://127.0.0.1:{port}", printed.group(0))
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless Chromium at the desktop width (set_viewport changes it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(10)
    set_viewport(driver, DESKTOP)
    yield driver
    driver.quit()


def opened(context: WebContext) -> TestClient:
    """A browser that opened the address `photodb web` printed (its token turned into the cookie)."""
    client = TestClient(create_app(context), base_url=ORIGIN)
    assert client.get(f"/?token={context.token}", follow_redirects=False).status_code == 303
    return client


@pytest.fixture
def web_context(db: Database, settings: Settings, world: World) -> WebContext:
    return WebContext(db, settings, settings.images_dir, cache_dir(settings.photodb_home), None, security.new_token())


@pytest.fixture
def client(web_context: WebContext) -> TestClient:
    return opened(web_context)
