"""The people pages in a real headless Chromium (tests/web/browsing.py): `photodb web` runs as a
user starts it, against a generated library; the browser opens the address it printed (with its
token; the clean address alone is refused), names a person, merges two and rejects a face by
clicking, then checks the database and the page."""

from __future__ import annotations

import pytest

from tests.web.browsing import and_wait_for_the_next_page, images_loaded, needs_chromium, scalar, shoot

pytestmark = needs_chromium


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
    images_loaded(browser)
    cover = browser.find_element(By.CSS_SELECTOR, f"#person-{world.ada_person} img.cover")
    assert browser.execute_script("return arguments[0].naturalWidth", cover) == 84  # a face crop, 60 px + margins
    shoot(browser, tmp_path, "1-people")

    browser.get(f"{server.url}/person/{world.ada_person}")
    box = browser.find_element(By.ID, f"name-person-{world.ada_person}")
    assert box.get_attribute("value") == ""  # no name yet: the box is empty, not "Unknown #…"
    box.send_keys("Ada Lovelace")
    button = browser.find_element(By.ID, f"name-person-button-{world.ada_person}")
    and_wait_for_the_next_page(browser, button.click)
    assert "Ada Lovelace" in browser.find_element(By.ID, "message").text
    assert browser.find_element(By.ID, "person-name").text == "Ada Lovelace"
    assert browser.find_element(By.ID, f"name-person-{world.ada_person}").get_attribute("value") == "Ada Lovelace"
    assert scalar(db, "SELECT first_name || ' ' || last_name FROM person WHERE id = %s", world.ada_person) == (
        "Ada Lovelace"
    )
    shoot(browser, tmp_path, "2-named")

    browser.get(f"{server.url}/person/{world.bob_person}")
    into = Select(browser.find_element(By.ID, "merge-into"))
    offered = [o.get_attribute("value") for o in into.options if o.get_attribute("value")]
    assert str(world.ada_person) in offered and str(world.bob_person) not in offered  # never into itself
    into.select_by_value(str(world.ada_person))
    and_wait_for_the_next_page(browser, browser.find_element(By.ID, "merge-button").click)
    assert "merged" in browser.find_element(By.ID, "message").text
    assert not browser.find_elements(By.ID, f"person-{world.bob_person}")
    assert scalar(db, "SELECT count(*) FROM person WHERE id = %s", world.bob_person) == 0
    assert scalar(db, "SELECT person_id FROM cluster WHERE id = %s", world.clusters["bob"]) == world.ada_person
    shoot(browser, tmp_path, "3-merged")

    rejected = world.faces["ada"][2]
    browser.get(f"{server.url}/person/{world.ada_person}")
    assert not browser.find_element(By.ID, "faces-not-button").is_enabled()  # nothing ticked: nothing offered
    browser.find_element(By.ID, f"pick-{rejected}").click()
    and_wait_for_the_next_page(browser, browser.find_element(By.ID, "faces-not-button").click)
    assert f"face {rejected} is not this person" in browser.find_element(By.ID, "message").text
    assert scalar(db, "SELECT cluster_id FROM person_detection WHERE id = %s", rejected) != world.clusters["ada"]
    assert not browser.find_elements(By.ID, f"face-{rejected}")
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
