"""The people page in a real headless Chromium (Debian's chromium + chromium-driver, driven by
selenium): `photodb web` runs as a user starts it, against a generated library; the browser opens
the address it printed (with its token; the clean address alone is refused), names a person, merges
two and rejects a face by clicking, then checks the database and the page. The screenshots are saved
in the test's tmp dir (their paths are printed)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from photodb.database.connection import Database
from tests.cli import PHOTODB, cli_env

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver;"
    " .ci/run installs them)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Server:
    url: str  # the clean address
    printed: str  # the address `photodb web` printed, with its token


@pytest.fixture
def server(tmp_path: Path, database_url: str, settings, world) -> Iterator[Server]:
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
def browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1200"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(10)
    yield driver
    driver.quit()


def shoot(browser, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    browser.save_screenshot(str(path))
    print(f"screenshot: {path}")


def and_wait_for_the_next_page(browser, act) -> None:
    """Do `act` (a click, a key) and wait until the page it leads to replaced this one, so that
    what is read next is never an element of the page before."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    before = browser.find_element(By.TAG_NAME, "html")
    act()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(before))


def scalar(db: Database, query: str, *params: object) -> object:
    with db.connection() as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row else None


@pytest.mark.timeout(180)
def test_name_merge_reject_and_review_in_a_real_browser(server, browser, world, db, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    browser.get(server.url + "/")
    assert "photodb web" in browser.page_source and f"Unknown #{world.ada_person}" not in browser.page_source
    browser.get(server.printed)
    assert browser.current_url == server.url + "/"  # the token left the address, kept as the cookie
    assert f"Unknown #{world.ada_person}" in browser.page_source
    thumbnail = browser.find_element(By.CSS_SELECTOR, f'img[src="/face/{world.faces["ada"][0]}.jpg"]')
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", thumbnail) == 84
    shoot(browser, tmp_path, "1-people")

    browser.find_element(By.ID, f"name-person-{world.ada_person}").send_keys("Ada Lovelace")
    button = browser.find_element(By.ID, f"name-person-button-{world.ada_person}")
    and_wait_for_the_next_page(browser, button.click)
    assert "Ada Lovelace" in browser.find_element(By.ID, "message").text
    assert browser.find_element(By.CSS_SELECTOR, f"#person-{world.ada_person} .name").text == "Ada Lovelace"
    assert scalar(db, "SELECT first_name || ' ' || last_name FROM person WHERE id = %s", world.ada_person) == (
        "Ada Lovelace"
    )
    shoot(browser, tmp_path, "2-named")

    Select(browser.find_element(By.ID, "merge-other")).select_by_value(str(world.bob_person))
    Select(browser.find_element(By.ID, "merge-keep")).select_by_value(str(world.ada_person))
    and_wait_for_the_next_page(browser, browser.find_element(By.ID, "merge-button").click)
    assert "merged" in browser.find_element(By.ID, "message").text
    assert not browser.find_elements(By.ID, f"person-{world.bob_person}")
    assert browser.find_elements(By.CSS_SELECTOR, f"#person-{world.ada_person} #cluster-{world.clusters['bob']}")
    assert scalar(db, "SELECT count(*) FROM person WHERE id = %s", world.bob_person) == 0
    assert scalar(db, "SELECT person_id FROM cluster WHERE id = %s", world.clusters["bob"]) == world.ada_person
    shoot(browser, tmp_path, "3-merged")

    rejected = world.faces["ada"][2]
    and_wait_for_the_next_page(browser, browser.find_element(By.ID, f"not-{rejected}").click)
    assert f"face {rejected} is not cluster {world.clusters['ada']}" in browser.find_element(By.ID, "message").text
    assert scalar(db, "SELECT cluster_id FROM person_detection WHERE id = %s", rejected) != world.clusters["ada"]
    assert not browser.find_elements(By.CSS_SELECTOR, f"#cluster-{world.clusters['ada']} #face-{rejected}")
    shoot(browser, tmp_path, "4-rejected")

    browser.get(server.url + "/review")
    pairs = browser.find_elements(By.CSS_SELECTOR, "article.pair")
    assert len(pairs) == 2
    first = int(pairs[0].get_attribute("id").removeprefix("candidate-"))
    shoot(browser, tmp_path, "5-review")
    and_wait_for_the_next_page(browser, ActionChains(browser).send_keys("r").perform)  # one key rejects the first pair
    assert "rejected" in browser.find_element(By.ID, "message").text
    assert scalar(db, "SELECT status FROM face_match_candidate WHERE candidate_id = %s", first) == "rejected"
    assert not browser.find_elements(By.ID, f"candidate-{first}")
    shoot(browser, tmp_path, "6-reviewed")
