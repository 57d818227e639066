"""``/docs`` renders with no internet: Swagger UI's files come from the server, not a CDN.

A real server and Debian's Chromium (headless, through Playwright) with every request to another
host aborted, as on a machine without internet. FastAPI's default page loads Swagger UI from a
CDN and stays blank there.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from tests.support.servers import serve_in_background

from moviegenre.api.app import DOCS_ASSETS

pytestmark = pytest.mark.browser

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@pytest.fixture
def keyed_server(small_model_dir):
    """With an API key the docs must stay public: the page, its assets and the schema."""
    with serve_in_background(small_model_dir, env={"MOVIEGENRE_API_KEY": "docs-test-key"}) as server:
        yield server


@pytest.mark.parametrize("server_fixture", ["small_model_server", "keyed_server"])
def test_docs_render_with_no_request_off_host(browser, request, server_fixture):
    base = request.getfixturevalue(server_fixture).base_url
    off_host, answers = [], {}
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)

    def offline(route):
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            off_host.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", offline)
    page.on("response", lambda response: answers.setdefault(urlsplit(response.url).path, response.status))
    try:
        page.goto(base + "/docs")
        page.locator(".opblock").first.wait_for()
        operations = page.eval_on_selector_all(
            ".opblock .opblock-summary",
            """els => els.map(e => e.querySelector('.opblock-summary-method').textContent + ' '
                                 + e.querySelector('[data-path]').dataset.path)""",
        )
    finally:
        context.close()
    assert off_host == []
    assert "GET /inference" in operations and "POST /v1/predict" in operations, operations
    assert answers[f"{DOCS_ASSETS}/swagger-ui-bundle.js"] == 200 and answers[f"{DOCS_ASSETS}/swagger-ui.css"] == 200
    assert answers["/openapi.json"] == 200, answers
