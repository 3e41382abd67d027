"""End-to-end: Debian's chromium, driven headless by Playwright, uses the page served by `serve`.

    .venv/bin/python -m pytest -q tests/test_serve_browser.py

Needs /usr/bin/chromium (`apt-get install chromium`) and the `playwright` Python package
(`bash scripts/setup.sh --dev` installs both); skipped with the reason when either is missing.
No browser is ever downloaded.
"""

import os

import pytest

from prompt_recovery.scoring.suite import load_examples
from prompt_recovery.serving.app import create_app
from prompt_recovery.serving.serve import BackgroundServer

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} not found: apt-get install chromium (or: bash scripts/setup.sh --dev)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", exc_type=ImportError,
                               reason="playwright is not installed: .venv/bin/pip install playwright "
                                      "(or: bash scripts/setup.sh --dev)")


@pytest.fixture(scope="module")
def url(recoverer):
    with BackgroundServer(create_app(recoverer)) as u:
        yield u


@pytest.fixture(scope="module")
def page(url):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page()
        pg.set_default_timeout(60_000)
        pg.goto(url + "/")
        yield pg
        browser.close()


def test_fill_click_recover_shows_the_instruction(page, recoverer):
    original = "Please send the quarterly figures by Friday."
    rewritten = "Yo, drop them quarterly numbers by Friday, fam!"
    page.fill("#original", original)
    page.fill("#rewritten", rewritten)
    page.click("#recover")
    page.wait_for_selector("#result:not([hidden])")
    shown = page.text_content("#instruction")
    assert shown and shown.strip()
    assert shown == recoverer.recover(original, rewritten)
    assert page.is_hidden("#error")
    assert "ms" in page.text_content("#latency")
    assert page.is_enabled("#recover")


def test_example_buttons_load_a_pair_in_one_click(page, recoverer):
    examples = load_examples()
    page.wait_for_selector("#examples button")
    assert page.locator("#examples button").all_text_contents() == [e["id"] for e in examples]
    ex = examples[1]
    page.click(f"#examples button[data-example='{ex['id']}']")
    assert page.input_value("#original") == ex["original_text"]
    assert page.input_value("#rewritten") == ex["rewritten_text"]
    page.click("#recover")
    page.wait_for_function("document.getElementById('truth').textContent.includes(%r)" % ex["rewrite_prompt"])
    assert page.text_content("#instruction") == recoverer.recover(ex["original_text"], ex["rewritten_text"])
    assert "tiny-random-mistral" in page.text_content("#model")


def test_errors_are_shown_clearly(page):
    page.fill("#original", "some text")
    page.fill("#rewritten", "   ")
    page.click("#recover")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error") == "Please fill in both texts: the rewritten text is empty."
    assert page.is_hidden("#result")

    page.fill("#rewritten", "y" * 20_001)  # over the server's limit: its 413 message is shown
    assert "over" in page.get_attribute("#rewritten-count", "class")
    page.click("#recover")
    page.wait_for_function("document.getElementById('error').textContent.startsWith('Error 413')")
    assert page.text_content("#error") == ("Error 413: rewritten_text has 20,001 characters; "
                                           "the limit is 20,000 per text")
    assert page.is_enabled("#recover")
