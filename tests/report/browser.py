"""Open a report in Debian's headless Chromium through Playwright (never a downloaded browser).

``open_page(path)`` loads a local HTML file with the network closed and returns what a check
needs: console messages and page errors, requests that left ``file:``, and the page itself for
screenshots and DOM reads. ``python -m tests.report.browser REPORT.html OUT.png`` writes the
screenshot of a report's first screen (how docs/report-example.png is made).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Flags for a closed machine: no sandbox (root in CI), no GPU, nothing phoning home.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 1200, "height": 1000}


class BrowserUnavailable(RuntimeError):
    """Chromium (or Playwright) is not there or cannot start here; the message says why."""


def chromium_path() -> str:
    """Return the Chromium executable: $RETENTIOND_CHROMIUM, else ``chromium`` on PATH.

    Raises:
        BrowserUnavailable: none found.
    """
    path = os.environ.get("RETENTIOND_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise BrowserUnavailable("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    return path


@dataclass
class Page:
    """A loaded page and what happened while it loaded."""

    page: Any  # playwright.sync_api.Page
    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    errors: list[str] = field(default_factory=list)  # uncaught page errors
    requests: list[str] = field(default_factory=list)  # every URL the page asked for

    @property
    def console_errors(self) -> list[str]:
        """Return console messages of type error or warning, and page errors."""
        return [text for kind, text in self.console if kind in ("error", "warning")] + self.errors

    @property
    def outside_requests(self) -> list[str]:
        """Return requests for anything but the file itself and inline data."""
        return [url for url in self.requests if not url.startswith(("file:", "data:", "about:"))]


@contextmanager
def open_page(path: Path, viewport: dict[str, int] = VIEWPORT) -> Iterator[Page]:
    """Load ``path`` in headless Chromium with a fresh profile; yield the :class:`Page`.

    Raises:
        BrowserUnavailable: Playwright is missing, or Chromium cannot start here.
    """
    executable = chromium_path()
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserUnavailable(f"playwright is not installed ({exc})") from None
    with tempfile.TemporaryDirectory(prefix="retentiond-chromium-") as profile, sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=list(CHROMIUM_ARGS),
                viewport=viewport,
                offline=True,
            )
        except PlaywrightError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BrowserUnavailable(f"chromium at {executable} does not start: {first}") from None
        try:
            page = context.new_page()
            loaded = Page(page)
            page.on("console", lambda m: loaded.console.append((m.type, m.text)))
            page.on("pageerror", lambda e: loaded.errors.append(str(e)))
            page.on("request", lambda r: loaded.requests.append(r.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            yield loaded
        finally:
            context.close()


def screenshot(report: Path, out: Path, *, height: int = VIEWPORT["height"]) -> None:
    """Write a PNG of the top ``height`` pixels of ``report`` at the test's width."""
    with open_page(report, {"width": VIEWPORT["width"], "height": height}) as loaded:
        loaded.page.screenshot(path=str(out))


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m tests.report.browser REPORT.html OUT.png [HEIGHT]")
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]), height=int(sys.argv[3]) if len(sys.argv) == 4 else 1000)
    print(sys.argv[2])
