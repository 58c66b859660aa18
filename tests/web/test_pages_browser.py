"""Every page at a laptop's and a phone's width in Debian's headless Chromium (tests/web/browsing.py):
no horizontal scrolling, even with a 200-character name; every cover image loaded; the unnamed
queue worked with the keyboard only; the person page's multi-select and cover choice. The
screenshots of each page at both widths are kept (PHOTODB_SCREENSHOTS)."""

from __future__ import annotations

import pytest

from photodb.people import identity
from tests.web.browsing import (
    DESKTOP,
    PHONE,
    and_wait_for_the_next_page,
    images_loaded,
    needs_chromium,
    overflow,
    scalar,
    set_viewport,
    shoot,
)

pytestmark = needs_chromium

LONG_NAME = ("Maximiliana " * 16 + "Wolfeschlegelsteinhausenbergerdorff")[:200]


@pytest.mark.timeout(300)
def test_every_page_fits_a_laptop_and_a_phone_even_with_a_200_character_name(server, browser, world, db, tmp_path):
    browser.get(server.printed)  # the owner opened the address `photodb web` printed
    from selenium.webdriver.common.by import By

    assert len(LONG_NAME) == 200
    identity.name_person(db, world.ada_person, LONG_NAME, by="user")
    photo = scalar(db, "SELECT photo_id FROM person_detection WHERE id = %s", world.pending_face)
    pages = {
        "people": "/",
        "person": f"/person/{world.ada_person}",
        "timeline": f"/person/{world.ada_person}/timeline",
        "unnamed": "/unnamed",
        "unsorted": "/unsorted",
        "photo": f"/photo/{photo}",
        "review": "/review",
        "quality": "/quality",
        "search": "/search",
        "search-results": "/search?person=Bob",
        "split": f"/split?person={world.ada_person}",
    }
    for size in (DESKTOP, PHONE):
        for name, path in pages.items():
            set_viewport(browser, size)
            browser.get(server.url + path)
            images_loaded(browser)
            assert overflow(browser) <= 0, f"{path} is wider than {size[0]} px"
            broken = browser.execute_script("return [...document.images].filter(i => !i.naturalWidth).map(i => i.src)")
            assert broken == [], f"{path}: images that did not load: {broken}"
            shoot(browser, tmp_path, f"{name}-{size[0]}x{size[1]}")
        set_viewport(browser, size)
        browser.get(server.url + "/")
        images_loaded(browser)
        assert browser.find_elements(By.ID, f"unsorted-{world.pending_face}")  # the section loaded into the page
        covers = browser.find_elements(By.CSS_SELECTOR, "#persons img.cover")
        assert len(covers) == 2
        assert all(browser.execute_script("return arguments[0].naturalWidth", c) > 0 for c in covers)
        card = browser.find_element(By.CSS_SELECTOR, f"#person-{world.ada_person}")
        assert card.size["width"] < size[0]  # the long name is cut in its card, not widening the grid


@pytest.mark.timeout(240)
def test_the_unnamed_queue_names_skips_and_hides_with_the_keyboard(server, browser, world, db, tmp_path):
    browser.get(server.printed)  # the owner opened the address `photodb web` printed
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    identity.unlink_cluster(db, world.clusters["bob"], by="user")  # two unnamed clusters; Bob stays a known name
    queue = sorted((world.clusters["bob"], world.clusters["cyd"]))  # equal sizes: by id

    def shown() -> int:
        return int(browser.find_element(By.CSS_SELECTOR, "[data-cluster]").get_attribute("data-cluster"))

    browser.get(server.url + "/unnamed")
    assert shown() == queue[0]
    box = browser.switch_to.active_element
    assert box.get_attribute("id") == "queue-name"  # typing starts at once
    names = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#known-names option")]
    assert "Bob" in names
    shoot(browser, tmp_path, "queue-1-first")

    and_wait_for_the_next_page(browser, lambda: browser.switch_to.active_element.send_keys(Keys.ESCAPE))
    assert shown() == queue[1]  # skipped: the next one
    and_wait_for_the_next_page(browser, lambda: browser.switch_to.active_element.send_keys("Bob", Keys.ENTER))
    named = scalar(db, "SELECT person_id FROM cluster WHERE id = %s", queue[1])
    assert named is not None
    assert scalar(db, "SELECT concat_ws(' ', first_name, last_name) FROM person WHERE id = %s", named) == "Bob"
    assert "Bob" in browser.find_element(By.ID, "message").text
    assert browser.find_elements(By.ID, "queue-done")  # nothing after it; the skipped one waits for later
    shoot(browser, tmp_path, "queue-2-named")

    browser.get(server.url + "/unnamed")
    assert shown() == queue[0]
    and_wait_for_the_next_page(browser, lambda: browser.switch_to.active_element.send_keys(Keys.DELETE))
    assert scalar(db, "SELECT hidden FROM cluster WHERE id = %s", queue[0]) is True
    assert browser.find_elements(By.ID, "queue-done")
    shoot(browser, tmp_path, "queue-3-hidden")


@pytest.mark.timeout(240)
def test_the_person_page_moves_ticked_faces_and_changes_the_cover(server, browser, world, db, tmp_path):
    browser.get(server.printed)  # the owner opened the address `photodb web` printed
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    moved = world.faces["ada"][:2]
    browser.get(f"{server.url}/person/{world.ada_person}")
    assert not browser.find_element(By.ID, "faces-move-button").is_enabled()
    for face in moved:
        browser.find_element(By.ID, f"pick-{face}").click()
    assert browser.find_element(By.ID, "selected-count").text == "2 selected"
    target = Select(browser.find_element(By.ID, "faces-move-to"))
    assert str(world.ada_person) not in [o.get_attribute("value") for o in target.options]  # not to themselves
    target.select_by_value(str(world.bob_person))
    and_wait_for_the_next_page(browser, browser.find_element(By.ID, "faces-move-button").click)
    assert "2 faces moved" in browser.find_element(By.ID, "message").text
    assert all(_owner_of(db, face) == world.bob_person for face in moved)
    and_wait_for_the_next_page(browser, browser.find_element(By.ID, "undo").click)  # one change for both
    assert "undid change" in browser.find_element(By.ID, "message").text
    assert all(_owner_of(db, face) == world.ada_person for face in moved)
    browser.get(f"{server.url}/person/{world.ada_person}")
    for face in moved:
        browser.find_element(By.ID, f"pick-{face}").click()
    Select(browser.find_element(By.ID, "faces-move-to")).select_by_value(str(world.bob_person))
    and_wait_for_the_next_page(browser, browser.find_element(By.ID, "faces-move-button").click)
    assert all(_owner_of(db, face) == world.bob_person for face in moved)

    chosen = world.faces["ada"][4]
    assert browser.find_element(By.ID, "cover").get_attribute("src").endswith(f"/face/{world.faces['ada'][2]}.jpg")
    and_wait_for_the_next_page(browser, browser.find_element(By.ID, f"cover-{chosen}").click)
    assert scalar(db, "SELECT cover_detection_id FROM person WHERE id = %s", world.ada_person) == chosen
    assert browser.find_element(By.ID, "cover").get_attribute("src").endswith(f"/face/{chosen}.jpg")
    browser.get(server.url + "/")
    cover = browser.find_element(By.CSS_SELECTOR, f"#person-{world.ada_person} img.cover")
    assert cover.get_attribute("src").endswith(f"/face/{chosen}.jpg")
    shoot(browser, tmp_path, "person-cover")


@pytest.mark.timeout(180)
def test_unsorted_faces_on_the_people_page_are_moved_when_ticked_and_a_person_chosen(server, browser, world, db):
    browser.get(server.printed)  # the owner opened the address `photodb web` printed
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    browser.get(server.url + "/")
    images_loaded(browser)  # the unsorted section is in
    move = browser.find_element(By.ID, "unsorted-move-button")
    assert not move.is_enabled()
    browser.find_element(By.ID, f"pick-{world.pending_face}").click()
    assert not move.is_enabled()  # a face but nobody to move it to yet
    Select(browser.find_element(By.ID, "unsorted-move-to")).select_by_value(str(world.bob_person))
    assert move.is_enabled()
    and_wait_for_the_next_page(browser, move.click)
    assert "1 face moved" in browser.find_element(By.ID, "message").text
    owner = scalar(
        db,
        """SELECT coalesce(c.person_id, d.person_id) FROM person_detection d
           LEFT JOIN cluster c ON c.id = d.cluster_id WHERE d.id = %s""",
        world.pending_face,
    )
    assert owner == world.bob_person


def _owner_of(db, face: int) -> object:
    return scalar(
        db,
        "SELECT coalesce(c.person_id, d.person_id) FROM person_detection d"
        " LEFT JOIN cluster c ON c.id = d.cluster_id WHERE d.id = %s",
        face,
    )


def _clusters_of(db, person_id: int) -> list[int]:
    with db.connection() as conn:
        rows = conn.execute("SELECT id FROM cluster WHERE person_id = %s ORDER BY id", (person_id,)).fetchall()
    return [row[0] for row in rows]


@pytest.mark.timeout(180)
def test_undo_of_a_merge_brings_both_persons_back_with_their_clusters(server, browser, world, db, tmp_path):
    browser.get(server.printed)  # the owner opened the address `photodb web` printed
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    before = {p: _clusters_of(db, p) for p in (world.ada_person, world.bob_person)}
    assert before[world.ada_person] and before[world.bob_person]
    browser.get(f"{server.url}/person/{world.bob_person}")
    Select(browser.find_element(By.ID, "merge-into")).select_by_value(str(world.ada_person))
    and_wait_for_the_next_page(browser, browser.find_element(By.ID, "merge-button").click)
    assert "merged" in browser.find_element(By.ID, "message").text
    assert not browser.find_elements(By.ID, f"person-{world.bob_person}")
    assert _clusters_of(db, world.ada_person) == sorted(before[world.ada_person] + before[world.bob_person])
    shoot(browser, tmp_path, "undo-1-merged")

    and_wait_for_the_next_page(browser, browser.find_element(By.ID, "undo").click)
    assert "undid change" in browser.find_element(By.ID, "message").text
    assert browser.find_elements(By.ID, f"person-{world.bob_person}")  # the card is back on the grid
    assert browser.find_elements(By.ID, f"person-{world.ada_person}")
    assert {p: _clusters_of(db, p) for p in before} == before
    shoot(browser, tmp_path, "undo-2-undone")
