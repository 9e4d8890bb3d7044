"""Open a report page in a headless Chromium: its load status, and a screenshot.

The page (see :mod:`drivingseg.report.html`) sets ``data-report-status`` on ``<body>``
once loaded: ``"ok"``, ``"broken-images:N"`` or ``"script-error: <message>"``.
:func:`page_status` dumps the DOM after a virtual-time budget (so the load handler has
run) and reads that attribute back; :func:`screenshot` renders the page to a PNG. Each
call runs the browser with a fresh temporary profile and a timeout, and kills the whole
browser process group when it overruns.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from html.parser import HTMLParser
from os import PathLike
from pathlib import Path

from drivingseg.errors import ConfigError
from drivingseg.fileio import write_bytes_atomic

__all__ = ["BROWSER_NAMES", "dump_dom", "find_browser", "page_status", "screenshot"]

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_STATUS_ATTR = "data-report-status"


def find_browser() -> str:
    """Path of the first headless-capable Chromium on ``PATH``; ``ConfigError`` if none."""
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    message = (
        f"no Chromium browser found on PATH (looked for {', '.join(BROWSER_NAMES)}); "
        "install one, e.g. `apt-get install chromium`"
    )
    raise ConfigError(message)


def _run_browser(args: list[str], *, timeout_s: float, what: str, page: Path) -> str:
    """Run the browser headless with ``args`` and a throw-away profile; return its stdout."""
    browser = find_browser()
    with tempfile.TemporaryDirectory(prefix="drivingseg-chromium-") as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            *args,
            page.resolve().as_uri(),
        ]
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            message = f"{what}: the browser did not finish within {timeout_s!r} s"
            raise ConfigError(message, path=page) from exc
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        message = f"{what}: {browser!r} exited with {proc.returncode!r}: {' | '.join(tail)}"
        raise ConfigError(message, path=page)
    return out.decode("utf-8", "replace")


class _BodyStatus(HTMLParser):
    """Finds the ``data-report-status`` attribute of the first ``<body>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.status: str | None = None
        self.seen_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and not self.seen_body:
            self.seen_body = True
            self.status = dict(attrs).get(_STATUS_ATTR)


def _check_page(html_path: str | PathLike[str]) -> Path:
    page = Path(html_path)
    if not page.is_file():
        raise ConfigError("report page not found (not a file)", path=page)
    return page


def dump_dom(
    html_path: str | PathLike[str], *, timeout_s: float = 90.0, budget_ms: int = 10_000
) -> str:
    """The page's DOM serialised after ``budget_ms`` of virtual time (load handlers ran)."""
    page = _check_page(html_path)
    return _run_browser(
        [f"--virtual-time-budget={int(budget_ms)}", "--dump-dom"],
        timeout_s=timeout_s,
        what="page status",
        page=page,
    )


def page_status(
    html_path: str | PathLike[str], *, timeout_s: float = 90.0, budget_ms: int = 10_000
) -> str:
    """The page's ``data-report-status`` after load (``"ok"`` when every image decoded).

    A page without the attribute gives ``"missing"``.
    """
    dom = dump_dom(html_path, timeout_s=timeout_s, budget_ms=budget_ms)
    parser = _BodyStatus()
    parser.feed(dom)
    parser.close()
    return "missing" if parser.status is None else parser.status


def screenshot(
    html_path: str | PathLike[str],
    png_path: str | PathLike[str],
    *,
    width: int = 1400,
    height: int = 2400,
    timeout_s: float = 90.0,
) -> None:
    """Render the top ``width`` x ``height`` pixels of the page to ``png_path``."""
    if width <= 0 or height <= 0:
        raise ConfigError(f"screenshot size must be positive, got {(width, height)!r}")
    page = _check_page(html_path)
    with tempfile.TemporaryDirectory(prefix="drivingseg-shot-") as tmp:
        shot = Path(tmp) / "shot.png"
        _run_browser(
            [
                f"--window-size={int(width)},{int(height)}",
                "--hide-scrollbars",
                "--virtual-time-budget=10000",
                f"--screenshot={shot}",
            ],
            timeout_s=timeout_s,
            what="screenshot",
            page=page,
        )
        if not shot.is_file():
            raise ConfigError("screenshot: the browser wrote no image", path=page)
        write_bytes_atomic(png_path, shot.read_bytes(), error=ConfigError, what="screenshot")
