"""The page at "/" in a real browser: Debian's Chromium, headless, driven by Playwright.

Each test talks to a real server (``moviegenre serve`` in a subprocess, the small linear model:
the session's ``small_model_server``) through the page only, the way a person would, and checks
what the page shows. Screenshots go to the test's ``tmp_path``; the main ones are also copied to
``test-output/`` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from conftest import E1_PLOT, E2_PLOT
from moviegenre.api.background import serve_in_background
from moviegenre.genres import GENRES

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "test-output"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def server(small_model_server) -> str:
    return small_model_server.base_url


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def open_page(page, base: str) -> None:
    """Load the page and wait until it has read the model and limits from the server."""
    page.goto(base + "/")
    page.wait_for_function("!document.getElementById('model-info').textContent.includes('loading')")


def bars(page) -> list[dict]:
    return page.eval_on_selector_all(
        "#chart [data-genre]",
        """els => els.map(e => ({genre: e.dataset.genre,
                                 probability: Number(e.dataset.probability),
                                 predicted: e.classList.contains('predicted'),
                                 text: e.textContent}))""",
    )


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.mouse.move(0, 0)  # no hover styles in the picture
    page.screenshot(path=str(path), full_page=True)
    SCREENSHOTS.mkdir(exist_ok=True)
    shutil.copyfile(path, SCREENSHOTS / name)
    return path


def error_text(page) -> str:
    error = page.locator("#error")
    error.wait_for(state="visible")
    return error.inner_text()


def test_billy_hayes_plot_puts_drama_on_top(page, server, small_model, tmp_path):
    open_page(page, server)
    assert small_model.id in page.locator("#model-info").inner_text()

    page.locator("#plot").press_sequentially(E2_PLOT)
    assert page.locator("#plot-count").inner_text() == f"{len(E2_PLOT):,}"
    with page.expect_response("**/v1/predict") as answer:
        page.locator("button[type=submit]").click()
    api = answer.value.json()
    assert answer.value.status == 200

    chart = page.locator("#chart [data-genre]")
    chart.first.wait_for()
    shown = bars(page)
    assert len(shown) == len(GENRES) == 24
    assert sorted(bar["genre"] for bar in shown) == sorted(GENRES)
    probabilities = [bar["probability"] for bar in shown]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0 <= p <= 1 for p in probabilities)
    assert shown[0]["genre"] == "Drama"

    prediction = api["predictions"][0]
    for bar in shown:
        assert bar["probability"] == pytest.approx(prediction["probabilities"][bar["genre"]])
    highlighted = [bar["genre"] for bar in shown if bar["predicted"]]
    assert highlighted == prediction["genres"]
    assert highlighted == small_model.predict([E2_PLOT])[0]
    # Predicted genres are named in text, not marked by colour alone.
    assert all("✓" in bar["text"] and "predicted" in bar["text"] for bar in shown if bar["predicted"])
    assert all("✓" not in bar["text"] for bar in shown if not bar["predicted"])
    status = page.locator("#status").inner_text()
    assert all(genre in status for genre in highlighted)
    assert api["model"]["id"] == small_model.id
    assert small_model.id in page.locator("#result-model").inner_text()
    save_screenshot(page, tmp_path, "web-page.png")

    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    save_screenshot(page, tmp_path, "web-page-phone.png")


def test_keyboard_only_example_and_submit(page, server):
    open_page(page, server)
    assert page.get_by_label("Plot synopsis").evaluate("e => e.id") == "plot"
    assert page.get_by_label("Title (optional)").evaluate("e => e.id") == "title"

    page.get_by_role("button", name="Message in a Bottle").focus()
    page.keyboard.press("Enter")
    assert page.locator("#plot").input_value() == E1_PLOT
    assert page.evaluate("document.activeElement.id") == "plot"

    page.get_by_role("button", name="Midnight Express").focus()
    page.keyboard.press("Space")
    assert page.locator("#plot").input_value() == E2_PLOT
    page.keyboard.press("Control+Enter")  # submits from inside the text area
    page.locator("#chart [data-genre]").first.wait_for()
    assert bars(page)[0]["genre"] == "Drama"
    # Tab order from the text area reaches the examples, then the submit button.
    order = []
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert order[:2] == ["Message in a Bottle", "Midnight Express"]
    assert "Predict genres" in order


def test_empty_plot_is_refused_before_sending(page, server, tmp_path):
    open_page(page, server)
    sent = []
    page.on("request", lambda request: sent.append(request.url) if "/v1/predict" in request.url else None)
    page.locator("#plot").fill("   \n  ")
    page.locator("button[type=submit]").click()
    assert "plot box is empty" in error_text(page)
    assert page.locator("#plot").get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "plot"
    assert page.locator("#error").get_attribute("role") == "alert"
    assert sent == []
    save_screenshot(page, tmp_path, "web-page-empty-plot.png")

    page.locator("#plot").fill(E2_PLOT)  # typing clears the error
    assert page.locator("#error").is_hidden()


def test_plot_over_the_limit_is_refused_by_page_and_server(page, server):
    limit = httpx.get(server + "/v1/limits").json()["max_plot_chars"]
    too_long = ("a prisoner plans his escape . " * (limit // 20))[: limit + 1]
    open_page(page, server)
    assert page.locator("#plot-limit").inner_text() == f"{limit:,}"
    sent = []
    page.on("request", lambda request: sent.append(request.url) if "/v1/predict" in request.url else None)
    page.locator("#plot").fill(too_long)
    assert page.locator("#plot-help").inner_text().endswith("Too long.")
    page.locator("button[type=submit]").click()
    message = error_text(page)
    assert "too long" in message and f"{limit + 1:,}" in message and f"{limit:,}" in message
    assert sent == []

    # A page that believes a larger limit still gets the server's 413, shown as a message.
    page.route("**/v1/limits", lambda route: route.fulfill(json={"max_plot_chars": 10 * limit}))
    open_page(page, server)
    page.locator("#plot").fill(too_long)
    with page.expect_response("**/v1/predict") as answer:
        page.locator("button[type=submit]").click()
    assert answer.value.status == 413
    assert "too long for the server" in error_text(page)
    assert page.locator("#result-body").is_hidden()


def test_unreachable_server_is_reported(page, server):
    open_page(page, server)
    page.locator("#plot").fill(E2_PLOT)
    page.route("**/v1/predict", lambda route: route.abort("connectionrefused"))
    page.locator("button[type=submit]").click()
    assert "not answering" in error_text(page)
    assert page.locator("button[type=submit]").inner_text() == "Predict genres"


def test_silent_server_times_out(page, server):
    open_page(page, server)
    page.locator("#predict-form").evaluate("form => { form.dataset.timeoutMs = '500'; }")
    page.route("**/v1/predict", lambda route: None)  # never answered
    page.locator("#plot").fill(E2_PLOT)
    page.locator("button[type=submit]").click()
    assert "did not answer within" in error_text(page)


def test_api_key_prompt_then_stopped_server(page, small_model_dir, tmp_path):
    """A server of its own (one start serves both checks): it needs a key, then it stops."""
    key = "correct horse battery staple"
    with serve_in_background(small_model_dir, env={"MOVIEGENRE_API_KEY": key}) as server:
        base, process = server.base_url, server.process
        open_page(page, base)  # the page itself is public; the API behind it is not
        assert "API key" in page.locator("#model-info").inner_text()
        page.locator("#plot").fill(E2_PLOT)
        page.locator("button[type=submit]").click()
        assert "needs an API key" in error_text(page)
        assert page.evaluate("document.activeElement.id") == "api-key"

        page.get_by_label("API key").fill(key)
        with page.expect_request("**/v1/predict") as sent:
            page.locator("button[type=submit]").click()
        assert sent.value.headers["x-api-key"] == key
        page.locator("#chart [data-genre]").first.wait_for()
        assert bars(page)[0]["genre"] == "Drama"
        assert page.locator("#error").is_hidden()
        assert "Model: linear-" in page.locator("#model-info").inner_text()

        process.terminate()
        process.wait(timeout=10)
        page.locator("#plot").fill(E1_PLOT)
        page.locator("button[type=submit]").click()
        assert "not answering" in error_text(page)
        assert page.locator("#result-body").is_hidden()  # no stale chart for another plot
    save_screenshot(page, tmp_path, "web-page-server-down.png")
