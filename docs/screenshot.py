"""Regenerate docs/web-page.png, the README's picture of the web page at "/".

    python docs/screenshot.py --model models/default

It serves the model with ``moviegenre serve`` on a free loopback port, opens the page in
Debian's Chromium (``apt-get install chromium``; Playwright's own browser would be a download)
through Playwright, clicks the "Midnight Express" example, submits it, waits for the genre bars
and saves the page (1100 px wide, as tall as the chart). Any model directory will do: the
picture shows its id and its numbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.support.servers import serve_in_background

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the browser tests' Chromium, as they launch it)

VIEWPORT = {"width": 1100, "height": 900}
#: The example button to click: a short plot, so the whole chart fits beside the form.
EXAMPLE_BUTTON = "Midnight Express"
TIMEOUT_MS = 30_000


def take_screenshot(base_url: str, out: Path) -> None:
    """Open the page at ``base_url``, predict the example plot, save the whole page to ``out``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(base_url + "/")
            # The page reads the model and the limits from the server before it is ready.
            page.wait_for_function("!document.getElementById('model-info').textContent.includes('loading')")
            page.get_by_role("button", name=EXAMPLE_BUTTON).click()
            with page.expect_response("**/v1/predict"):
                page.locator("#submit").click()
            page.locator("#chart [data-genre]").first.wait_for()
            page.locator("#plot").evaluate("e => e.blur()")  # no focus ring in the picture
            page.mouse.move(0, 0)  # nor a hover style
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)  # the whole chart: a bar per label (24 genres by default)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/default"), help="model directory to serve")
    parser.add_argument("--out", type=Path, default=HERE / "web-page.png", help="PNG to write")
    args = parser.parse_args(argv)
    with serve_in_background(args.model) as server:
        take_screenshot(server.base_url, args.out)
    print(f"{args.out} ({args.out.stat().st_size / 1000:.0f} KB)")


if __name__ == "__main__":
    main()
