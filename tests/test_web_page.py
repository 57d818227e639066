"""The page at "/" in a real browser: Debian's Chromium, headless, driven by Playwright.

Each test talks to a real server (``moviegenre serve`` in a subprocess, the small linear model:
the session's ``small_model_server``) through the page only, the way a person would, and checks
what the page shows. Screenshots go to the test's ``tmp_path``; the main ones are also copied to
``test-output/`` (git-ignored) for a human to look at.

The accessibility check runs axe-core in the page; it comes from npm into ``tests/web``
(``npm ci --prefix tests/web``), and the test is skipped where it is missing, except in CI.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest
from tests.support.needs import need
from tests.support.servers import serve_in_background

from conftest import E1_PLOT, E2_PLOT
from moviegenre.core.genres import GENRES

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "test-output"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
AXE = REPO / "tests" / "web" / "node_modules" / "axe-core" / "axe.min.js"
TITLES = {"Message in a Bottle": E1_PLOT, "Midnight Express": E2_PLOT}
#: A plot with markup in it: the page must show it as text, never build elements from it.
HOSTILE_PLOT = (
    'an outlaw rides into a frontier town <img src=x onerror="window.__xss = 1"> and the sheriff '
    "<script>window.__xss = 2</script> calls the <b>marshal</b> to stop the bank robbery ."
)


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


def predict(page, plot: str, title: str | None = None) -> dict:
    """Submit ``plot`` (and ``title``) through the form; the API's answer, once the page shows it."""
    page.locator("#plot").fill(plot)
    if title is not None:
        page.locator("#title").fill(title)
    with page.expect_response("**/v1/predict") as answer:
        page.locator("button[type=submit]").click()
    assert answer.value.status == 200, answer.value.text()
    page.locator("#reason-list .reason").first.wait_for()
    return answer.value.json()


def reasons(page) -> list[dict]:
    """Per reason card on the page: its genre and its terms as shown."""
    return page.eval_on_selector_all(
        "#reason-list .reason",
        """cards => cards.map(card => ({
               genre: card.dataset.genre,
               text: card.innerText,
               terms: [...card.querySelectorAll('[data-term]')].map(e => ({
                   term: e.dataset.term, weight: Number(e.dataset.weight), field: e.dataset.field,
                   up: e.classList.contains('up'), down: e.classList.contains('down'),
                   text: e.textContent}))}))""",
    )


def highlights(page) -> list[dict]:
    return page.eval_on_selector_all(
        "#sent-plot mark",
        """els => els.map(e => ({term: e.dataset.term, weight: Number(e.dataset.weight), text: e.textContent,
                                 up: e.classList.contains('up'), down: e.classList.contains('down'),
                                 before: getComputedStyle(e, '::before').content,
                                 underline: getComputedStyle(e).borderBottomStyle}))""",
    )


def result_is_cleared(page) -> bool:
    return page.evaluate(
        """() => document.getElementById('result-body').hidden
                 && !document.querySelector('#chart > *, #reason-list > *, #sent-plot > *, #sent-title > *')
                 && document.getElementById('sent-plot').textContent === ''"""
    )


def error_text(page) -> str:
    error = page.locator("#error")
    error.wait_for(state="visible")
    return error.inner_text()


def assert_readable_form_of(shown: str, tokenised: str) -> None:
    """``shown`` is the dataset's ``tokenised`` plot as a person writes it: the same words in the
    same order, with no space before punctuation, contractions joined, sentences capitalised."""
    assert re.findall(r"[a-z]+", shown.lower()) == re.findall(r"[a-z]+", tokenised.lower())
    assert " ," not in shown and " ." not in shown and "  " not in shown and " ' " not in shown
    assert shown == shown.strip() and shown[0].isupper()
    assert all(sentence[0].isupper() for sentence in re.split(r"(?<=[.!?]) ", shown))
    if "can ' t" in tokenised:
        assert "can't" in shown


#: A contribution as a raw logit ("+1.79", "−0.42"): the page shows shares instead.
RAW_LOGIT = re.compile(r"[+−-]\s?\d+\.\d")


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
    # The model is named once on the page, at the top, not again beside the result.
    assert page.locator("body").inner_text().count(small_model.id) == 1
    assert small_model.id in page.locator("#model-info").inner_text()
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
    assert_readable_form_of(page.locator("#plot").input_value(), E1_PLOT)
    assert page.locator("#title").input_value() == "Message in a Bottle"
    assert page.evaluate("document.activeElement.id") == "plot"

    page.get_by_role("button", name="Midnight Express").focus()
    page.keyboard.press("Space")
    assert_readable_form_of(page.locator("#plot").input_value(), E2_PLOT)
    assert page.locator("#title").input_value() == "Midnight Express"
    with page.expect_request("**/v1/predict") as sent:
        page.keyboard.press("Control+Enter")  # submits from inside the text area
    assert sent.value.post_data_json["items"][0]["title"] == "Midnight Express"
    assert sent.value.post_data_json["items"][0]["plot"] == page.locator("#plot").input_value()
    page.locator("#chart [data-genre]").first.wait_for()
    assert bars(page)[0]["genre"] == "Drama"
    # Tab order from the text area reaches the examples, then the submit button.
    order = []
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert order[:2] == ["Message in a Bottle", "Midnight Express"]
    assert "Predict genres" in order

    # From the form's last control the next stop is the result: the first genre's radio, with a
    # visible focus ring; the arrow keys choose which genre's words are highlighted.
    page.locator("#submit").focus()
    page.keyboard.press("Tab")
    focused = page.evaluate(
        """() => ({name: document.activeElement.name, value: document.activeElement.value,
                  outline: getComputedStyle(document.activeElement).outlineStyle})"""
    )
    genres = [reason["genre"] for reason in reasons(page)]
    assert focused == {"name": "highlight-genre", "value": genres[0], "outline": "solid"}
    page.keyboard.press("ArrowDown")
    assert page.locator("#reason-list input:checked").get_attribute("value") == genres[1]
    assert genres[1] in page.locator("#sent-heading").inner_text()
    shown = {reason["genre"]: reason for reason in reasons(page)}
    assert {mark["term"] for mark in highlights(page)} == {
        term["term"] for term in shown[genres[1]]["terms"] if term["field"] == "plot"
    }


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
    message = error_text(page)
    assert message == f"The plot has {limit + 1:,} characters; the limit is {limit:,}."
    assert page.locator("#result-body").is_hidden()


def test_a_plot_the_server_refuses_is_explained_in_words(page, server):
    """The server's 422 names the place for a program (``items[0].plot (id 'page')``); the page
    says it to a person."""
    open_page(page, server)
    page.locator("#plot").fill("... !!! ...")
    with page.expect_response("**/v1/predict") as answer:
        page.locator("button[type=submit]").click()
    assert answer.value.status == 422 and "items[0].plot (id 'page')" in answer.value.json()["error"]["message"]
    assert error_text(page) == "The plot holds no letter or digit; send the movie's plot text."
    assert page.locator("#plot").get_attribute("aria-invalid") == "true"


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


def test_reasons_are_the_plots_words_highlighted_in_it(page, server, tmp_path):
    """For the top 3 genres the page lists the words that pushed each up or down, as the API
    explained them, and marks each of them in the plot as sent, up and down told apart by more
    than colour."""
    open_page(page, server)
    api = predict(page, E2_PLOT, "Midnight Express")
    prediction = api["predictions"][0]
    explained = prediction["explanation"]
    top = sorted(prediction["probabilities"], key=prediction["probabilities"].get, reverse=True)[:3]
    assert [entry["genre"] for entry in explained] == top

    cards = reasons(page)
    assert [card["genre"] for card in cards] == top
    plot_words = set(re.findall(r"\w+", E2_PLOT.lower()))
    all_terms = [term for card in cards for term in card["terms"] if term["field"] == "plot"]
    assert len(all_terms) >= 3
    assert {term["term"].lower() for term in all_terms} <= plot_words
    for card, entry in zip(cards, explained, strict=True):
        genre = card["genre"]
        assert f"{prediction['probabilities'][genre]:.0%}" in card["text"]  # the calibrated value
        # Every term the API gave, each marked up or down and read out in words.
        assert sorted((t["term"], t["weight"]) for t in card["terms"]) == sorted(
            (t["term"], pytest.approx(t["weight"])) for t in entry["terms"]
        )
        # In words, and as shares of what moved the genre, never as raw logits.
        assert f"Words that raised {genre}:" in card["text"] and f"Words that lowered {genre}:" in card["text"]
        assert not RAW_LOGIT.search(card["text"]), card["text"]
        total = sum(abs(t["weight"]) for t in entry["terms"]) + abs(entry["other_terms"])
        assert entry["embedding"] is None  # a linear model: no "plot as a whole" part
        for term in card["terms"]:
            direction = "up" if term["weight"] >= 0 else "down"
            assert term[direction] and not term["down" if direction == "up" else "up"]
            assert f"{term['term']}" in term["text"]
            share = f"{abs(term['weight']) / total:.0%}"
            assert share in term["text"] or share == "0%" and "<1%" in term["text"]
            said = "raised" if direction == "up" else "lowered"
            assert f"{said} {genre}: " in term["text"] and "of what moved it" in term["text"]
            assert ("▲" if direction == "up" else "▼") in term["text"]

        # This genre's words, highlighted in the plot as sent.
        page.locator("#reason-list").get_by_role("radio", name=re.compile(f"^{genre}")).check()
        assert genre in page.locator("#sent-heading").inner_text()
        marks = highlights(page)
        plot_terms = {t["term"]: t["weight"] for t in card["terms"] if t["field"] == "plot"}
        assert {mark["term"] for mark in marks} == set(plot_terms)
        for mark in marks:
            assert mark["text"].lower() == mark["term"].lower()
            assert mark["weight"] == pytest.approx(plot_terms[mark["term"]])
            assert mark["up"] == (mark["weight"] >= 0) != mark["down"]
            # Without colour: an arrow and a solid (up) or dashed (down) underline.
            assert mark["before"].startswith('"▲"' if mark["up"] else '"▼"')
            assert mark["underline"] == ("solid" if mark["up"] else "dashed")
        assert page.locator("#sent-plot").inner_text() == E2_PLOT.strip()  # the text itself, intact
    assert page.locator("#sent-title").inner_text() == "Title: Midnight Express"
    assert page.locator("#results").get_attribute("aria-live") == "polite"
    save_screenshot(page, tmp_path, "web-page-reasons.png")


def test_reasons_name_the_plot_as_a_whole_and_add_up_to_100(page, server):
    """A model with an embedding (static, hybrid) moves a genre by the plot's meaning too: the
    page calls that part "the plot as a whole" and gives every part its share. The answer is
    made up here (the test server's model is linear), in the API's shape."""
    entry = {
        "genre": "Crime",
        "probability": 0.8,
        "score": 2.0,
        "intercept": -1.0,
        "terms": [
            {"term": "drugs", "field": "plot", "weight": 1.79},
            {"term": "college", "field": "plot", "weight": -0.6},
            {"term": "1978", "field": "year", "weight": 0.01},
        ],
        "other_terms": 0.6,
        "embedding": 1.2,
    }
    answer = {
        "model": {"id": "static-test", "kind": "static"},
        "predictions": [
            {"id": "page", "probabilities": {"Crime": 0.8, "Drama": 0.5}, "genres": ["Crime"], "explanation": [entry]}
        ],
    }
    page.route("**/v1/predict", lambda route: route.fulfill(status=200, json=answer))
    open_page(page, server)
    predict(page, E2_PLOT)
    card = page.locator("#reason-list .reason").first
    text = card.inner_text()
    assert "Words that raised Crime:" in text and "Words that lowered Crime:" in text
    assert not RAW_LOGIT.search(text) and "1.79" not in text and "embedding" not in text
    shares = card.locator("li.term").evaluate_all(
        "els => els.map(e => [e.dataset.term || e.querySelector('.term-word').textContent, "
        "Number(e.dataset.share), e.innerText])"
    )
    parts = {name: share for name, share, _ in shares}
    assert parts["the plot as a whole"] == pytest.approx(1.2 / 4.2)
    assert parts["drugs"] == pytest.approx(1.79 / 4.2)
    assert sum(parts.values()) == pytest.approx(1.0)
    lowered = card.get_by_role("list", name="Words that lowered Crime").inner_text()
    assert "college" in lowered and "14%" in lowered and "drugs" not in lowered
    assert "43%" in card.get_by_role("list", name="Words that raised Crime").inner_text()
    assert "<1%" in next(said for name, _, said in shares if name == "1978")
    # The model that answered is named once, at the top.
    assert page.locator("body").inner_text().count("static-test") == 1


def test_plot_with_markup_is_shown_as_text(page, server):
    open_page(page, server)
    page.evaluate("window.__xss = 0")
    predict(page, HOSTILE_PLOT, "<i>Tombstone</i>")
    assert page.locator("#sent-plot").text_content() == HOSTILE_PLOT
    assert page.locator("#sent-title").text_content() == "Title: <i>Tombstone</i>"
    assert page.locator("#results img, #results script, #results b, #results i").count() == 0
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.evaluate("window.__xss") == 0
    assert page.locator("#sent-plot mark").count() >= 1  # highlighted all the same


def test_failed_request_clears_the_previous_result(page, server):
    open_page(page, server)
    predict(page, E2_PLOT)
    assert not result_is_cleared(page)

    page.locator("#plot").fill("   ")  # refused by the page itself
    page.locator("button[type=submit]").click()
    assert "plot box is empty" in error_text(page)
    assert result_is_cleared(page)
    assert "No result" in page.locator("#status").inner_text()

    predict(page, E1_PLOT)
    assert not result_is_cleared(page)
    broken = {"error": {"code": "internal", "message": "Something broke."}}
    page.route("**/v1/predict", lambda route: route.fulfill(status=500, json=broken))
    page.locator("button[type=submit]").click()
    assert "Something broke." in error_text(page)
    assert result_is_cleared(page)


def test_model_without_reasons_still_shows_its_genres(page, server):
    """A model kind the API cannot explain answers 422 not_explainable to ``explain``: the page
    asks again without it and shows the genres, saying there are no reasons."""
    refused = {"error": {"code": "not_explainable", "message": "model kind 'seed' cannot be explained"}}

    def refuse_explain(route):
        if route.request.post_data_json.get("explain"):
            route.fulfill(status=422, json=refused)
        else:
            route.continue_()

    page.route("**/v1/predict", refuse_explain)
    open_page(page, server)
    page.locator("#plot").fill(E2_PLOT)
    page.locator("button[type=submit]").click()
    page.locator("#chart [data-genre]").first.wait_for()
    assert bars(page)[0]["genre"] == "Drama"
    assert page.locator("#reasons-none").is_visible()
    assert page.locator("#reasons").is_hidden() and page.locator("#reason-list > *").count() == 0
    assert page.locator("#sent-plot").inner_text() == E2_PLOT.strip()
    assert page.locator("#error").is_hidden()


@pytest.fixture(scope="session")
def axe() -> Path:
    """axe-core's script; session-scoped and asked for first, so a skip costs no server start."""
    need(AXE.exists(), f"axe-core not found at {AXE}: make test installs it (npm ci --prefix tests/web)")
    return AXE


def serious_violations(page, axe: Path) -> list[dict]:
    """axe-core's violations of impact serious or critical on the page as it stands."""
    page.add_script_tag(path=str(axe))
    violations = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(v => ({
               id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))"""
    )
    for violation in violations:
        print(f"axe {violation['impact']}: {violation['id']}: {violation['help']}")
        for node in violation["nodes"]:
            print("   ", node)
    return [v for v in violations if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_axe_finds_no_serious_problems(axe, page, server, viewport):
    page.set_viewport_size(viewport)
    open_page(page, server)
    page.get_by_role("button", name="Midnight Express").click()
    with page.expect_response("**/v1/predict"):
        page.locator("button[type=submit]").click()
    page.locator("#reason-list .reason").first.wait_for()
    page.locator("#reason-list input[type=radio]").nth(1).check()  # a second genre's highlights
    assert serious_violations(page, axe) == []

    page.locator("#plot").fill("")  # the error state: message, invalid field, no result
    page.locator("button[type=submit]").click()
    error_text(page)
    assert serious_violations(page, axe) == []


# --- a model of its own labels (issue 20) -------------------------------------------------------

CATALOGUE = REPO / "examples" / "own-labels" / "catalogue.csv"
OWN_TITLE = "Catálogo de prueba"
#: Labels of the example catalogue renamed to names the page must show as text, markup and all.
OWN_RENAMED = {"Crime & Mystery": "Crime, Mystery", "Music & Dance": '<img src=x onerror="window.__xss = 3">Music'}


@pytest.fixture(scope="module")
def own_label_server(tmp_path_factory):
    """``moviegenre serve`` of a linear model of the example catalogue's 11 labels (two renamed,
    :data:`OWN_RENAMED`), with a title; and the model."""
    import pandas as pd

    from moviegenre.core.data import LabelSpec, load_movies
    from moviegenre.model.artifact import load_model, save_model
    from moviegenre.training.train import train

    directory = tmp_path_factory.mktemp("own-labels")
    frame = pd.read_csv(CATALOGUE, dtype=str, keep_default_na=False)
    frame.rename(columns={f"tag_{old}": f"tag_{new}" for old, new in OWN_RENAMED.items()}).to_csv(
        directory / "catalogue.csv", index=False
    )
    movies = load_movies(directory / "catalogue.csv", labelled=True, labels=LabelSpec(prefix="tag_"))
    model = train("linear", movies, cv_folds=0, title=OWN_TITLE)
    save_model(model.pipeline, model.card, directory / "model")
    with serve_in_background(directory / "model", log=directory / "serve.log") as server:
        yield server.base_url, load_model(directory / "model")


def test_own_label_model_titles_the_page_and_draws_its_labels(page, own_label_server, tmp_path):
    base, model = own_label_server
    labels = list(model.labels)
    assert len(labels) == 11 and "Ciencia ficción & Fantasía" in labels and "Crime, Mystery" in labels
    open_page(page, base)
    page.evaluate("window.__xss = 0")
    assert page.locator("h1").inner_text() == OWN_TITLE
    assert page.title() == OWN_TITLE
    assert "11 labels" in page.locator("#lede").inner_text()

    api = predict(page, E2_PLOT, "Midnight Express")
    prediction = api["predictions"][0]
    assert list(prediction["probabilities"]) == labels

    shown = bars(page)
    assert sorted(bar["genre"] for bar in shown) == sorted(labels)  # one bar per label, nothing else
    for bar in shown:
        assert bar["genre"] in bar["text"]  # the name as text: accents, '&', ',' and markup as they are
        assert bar["probability"] == pytest.approx(prediction["probabilities"][bar["genre"]])
    assert [bar["genre"] for bar in shown if bar["predicted"]] == prediction["genres"]
    assert page.evaluate("document.querySelectorAll('img, #chart i, #chart b').length") == 0
    assert page.evaluate("window.__xss") == 0

    cards = reasons(page)
    assert cards and [card["genre"] for card in cards] == [entry["genre"] for entry in prediction["explanation"]]
    assert all(card["genre"] in labels for card in cards)
    top = cards[0]["genre"]
    assert f"Words that raised {top}:" in cards[0]["text"]
    assert top in page.locator("#sent-heading").inner_text()
    status = page.locator("#status").inner_text()
    assert all(label in status for label in prediction["genres"])
    assert page.locator("body").inner_text().count(model.id) == 1
    # It speaks of labels, not genres: headings, button, legends, status.
    assert page.locator("#results-heading").inner_text() == "Labels"
    assert page.locator("button[type=submit]").inner_text() == "Predict labels"
    assert page.locator("#chart-heading").inner_text() == "All labels"
    assert page.locator("#reasons-heading").inner_text() == "Why: the words behind the top labels"
    assert "predicted label" in status
    assert page.locator("#chart").get_attribute("aria-label") == "Probability of each label, most likely first"
    assert "genre" not in page.evaluate("document.body.innerText").lower()
    assert "genre" not in page.title().lower()
    save_screenshot(page, tmp_path, "web-page-own-labels.png")


def test_default_model_keeps_the_pages_heading(page, server):
    open_page(page, server)
    assert page.locator("h1").inner_text() == "Movie genres from a plot"
    assert page.title() == "Movie genres from a plot"
    assert "24 genres" in page.locator("#lede").inner_text()
    api = predict(page, E2_PLOT, "Midnight Express")
    # Its words stay the genres' (the words of a model of its own labels are "labels").
    assert page.locator("#results-heading").inner_text() == "Genres"
    assert page.locator("button[type=submit]").inner_text() == "Predict genres"
    assert page.locator("#chart-heading").inner_text() == "All genres"
    assert page.locator("#reasons-heading").inner_text() == "Why: the words behind the top genres"
    assert "threshold for that genre." in page.locator("#chart-legend").inner_text()
    assert page.locator("#chart").get_attribute("aria-label") == "Probability of each genre, most likely first"
    noun = "genre" if len(api["predictions"][0]["genres"]) == 1 else "genres"
    assert f"predicted {noun}: " in page.locator("#status").inner_text()
    assert "label" not in page.evaluate("document.body.innerText").lower()


def test_own_label_page_without_a_title_says_labels(axe, page, own_label_server):
    """A model of its own labels and no title: the heading speaks of labels too; and the page
    passes the accessibility check."""
    base, _ = own_label_server

    def untitled(route):
        response = route.fetch()
        card = response.json()
        card.pop("title", None)
        route.fulfill(response=response, json=card)

    page.route("**/v1/model", untitled)
    open_page(page, base)
    assert page.locator("h1").inner_text() == "Movie labels from a plot"
    assert page.title() == "Movie labels from a plot"
    predict(page, E2_PLOT, "Midnight Express")
    assert "genre" not in page.evaluate("document.body.innerText").lower()
    page.locator("#reason-list input[type=radio]").nth(1).check()
    assert serious_violations(page, axe) == []


def test_the_pages_list_of_the_24_genres_is_moviegenres():
    script = (REPO / "src" / "moviegenre" / "api" / "web" / "app.js").read_text(encoding="utf-8")
    listed = re.search(r"const COURSE_GENRES = \[(.*?)\];", script, re.S)[1]
    assert re.findall(r'"([^"]+)"', listed) == list(GENRES)


def test_a_titled_genre_model_keeps_the_genres_words(page, server):
    """A title changes the heading only: a model of the 24 genres still speaks of genres."""

    def titled(route):
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "title": "Our genre model"})

    page.route("**/v1/model", titled)
    open_page(page, server)
    assert page.locator("h1").inner_text() == "Our genre model"
    assert "24 genres" in page.locator("#lede").inner_text()
    predict(page, E2_PLOT, "Midnight Express")
    assert page.locator("#chart-heading").inner_text() == "All genres"
    assert "label" not in page.evaluate("document.body.innerText").lower()
