"""The HTML proof page (`reasoner why --format html`) in a real browser: Debian's headless
Chromium, driven by Selenium through Debian's chromedriver (tests/browser.py).

Without the browser these tests fail under CI (CI=true, where .ci/run installs it) and
are skipped elsewhere, saying what to install.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import browser  # tests/browser.py
from reasoner import load_rules
from reasoner.cli import main

ROOT = Path(__file__).resolve().parent.parent
P01 = ROOT / "facts" / "p01_grade2_first_dose.facts"


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    reason = browser.unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the browser: {reason}")
        pytest.skip(reason)
    d = browser.start(tmp_path_factory.mktemp("chromium-profile"))
    yield d
    d.quit()


def write_page(tmp_path: Path, *args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--format", "html"])
    assert result.exit_code == 0, result.output
    page = tmp_path / "proof.html"
    page.write_text(result.output, encoding="utf-8")
    return page.as_uri()


@pytest.fixture(scope="module")
def proof_page(tmp_path_factory) -> str:
    return write_page(tmp_path_factory.mktemp("page"), "why", "recommend(p01, A)", str(P01))


def by_id(driver, element_id: str):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, element_id)


def step(driver, fact: str, kind: str = "k-derived"):
    """The first step of this kind printed in full (not a back-reference) for `fact`."""
    from selenium.webdriver.common.by import By
    return driver.find_element(By.XPATH, f"//li[contains(@class, '{kind}') and not(contains(@class, 'ref'))]"
                                         f"[./*/code[@class='fact' and text()='{fact}'] or "
                                         f"./details/summary/code[@class='fact' and text()='{fact}']]")


def summary(element):
    from selenium.webdriver.common.by import By
    return element.find_element(By.XPATH, "./details/summary")


def test_page_loads_from_a_file_with_no_console_errors_and_no_requests(driver, proof_page) -> None:
    driver.get(proof_page)
    assert driver.title == "Proofs of recommend(p01, A)"
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    driver.execute_script("console.error('probe: the console log is read')")
    assert any("probe: the console log is read" in e["message"] for e in driver.get_log("browser"))


def test_a_sub_proof_folds_and_unfolds(driver, proof_page) -> None:
    from selenium.webdriver.common.by import By
    driver.get(proof_page)
    grading = step(driver, "crs_grade(p01, 2)")
    first = grading.find_element(By.XPATH, "./details/ul/li[1]")  # the grading's first premise
    assert first.is_displayed() and first.text
    summary(grading).click()  # fold
    assert not first.is_displayed() and summary(grading).is_displayed()
    summary(grading).click()  # unfold
    assert first.is_displayed()


def test_references_hold_the_full_citations_and_steps_link_to_them(driver, proof_page) -> None:
    from selenium.webdriver.common.by import By
    rules = load_rules(ROOT / "rules" / "crs")
    driver.get(proof_page)
    for key in ("guideline", "ref1", "astct", "vocabulary"):
        assert by_id(driver, f"src-{key}").text == f"{key} {rules.sources[key].text}"
    link = step(driver, "crs_grade(p01, 2)").find_element(By.CSS_SELECTOR, ".sources a[href='#src-astct']")
    link.click()
    assert driver.execute_script("return location.hash") == "#src-astct"


def test_an_input_fact_shows_the_file_and_line_it_was_read_from(driver, proof_page) -> None:
    from selenium.webdriver.common.by import By
    driver.get(proof_page)
    fact = step(driver, "temperature_c(p01, 38.9)", "k-input")
    assert fact.find_element(By.CSS_SELECTOR, ".origin").text == f"{P01}:7:1"


def test_a_back_reference_opens_and_jumps_to_the_step_printed_above(driver, proof_page) -> None:
    from selenium.webdriver.common.by import By
    driver.get(proof_page)
    target = step(driver, "crs_grade(p01, 2)")
    target_id = target.get_attribute("id")
    backref = driver.find_element(By.XPATH, f"//a[@class='backref' and @href='#{target_id}']")
    assert backref.text == f"proved above, {target_id}"
    assert driver.execute_script("return arguments[0].compareDocumentPosition(arguments[1]) & 4", target, backref)
    root = target.find_element(By.XPATH, "ancestor::section[1]/ul/li")
    summary(root).click()  # fold the whole proof that holds the target: the target is hidden
    assert not target.is_displayed() and backref.is_displayed()
    driver.execute_script("arguments[0].scrollIntoView()", backref)
    backref.click()
    assert driver.execute_script("return location.hash") == f"#{target_id}"
    assert target.is_displayed() and "crs_grade(p01, 2)" in target.text
    top = driver.execute_script("return arguments[0].getBoundingClientRect().top", summary(target))
    assert -2 < top < driver.execute_script("return window.innerHeight") / 2  # scrolled to it (sub-pixel)


def test_text_from_facts_is_shown_as_written_never_run(driver, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    rules = tmp_path / "notes.dl"
    rules.write_text('.decl note(p: id, text: symbol) input "a note"\n'
                     '.decl flagged(p: id, text: symbol) output "flagged"\n'
                     '.source s1 "A <b>citation</b> & more"\n'
                     '@source s1\n@says "Any note <i>flags</i>."\nflagged(P, T) :- note(P, T).\n', encoding="utf-8")
    facts = tmp_path / "notes.facts"
    facts.write_text('note(a, "<script>document.title = \\"run\\"</script> & <img src=x>").\n', encoding="utf-8")
    driver.get(write_page(tmp_path, "why", "--rules", str(rules), "flagged(a, T)", str(facts)))
    assert driver.title == "Proof of flagged(a, T)"
    assert driver.execute_script("return document.scripts.length") == 1  # the page's own
    assert driver.execute_script("return document.images.length") == 0
    root = by_id(driver, "n")
    assert root.find_element(By.CSS_SELECTOR, "code.fact").text == \
        'flagged(a, "<script>document.title = \\"run\\"</script> & <img src=x>")'
    assert root.find_element(By.CSS_SELECTOR, ".says").text == "Any note <i>flags</i>."
    assert by_id(driver, "src-s1").text == "s1 A <b>citation</b> & more"
