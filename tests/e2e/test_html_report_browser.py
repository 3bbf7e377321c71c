"""report.html in a real headless Chromium: a real run's report renders cleanly, offline.

Chromium comes from the system (``apt-get install chromium``), driven by the
``playwright`` package (its bundled browsers are never downloaded). Without
Chromium the test skips locally and fails when ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from e2e.cli_harness import Cli

pytestmark = pytest.mark.slow

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 30_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _unavailable(message: str) -> NoReturn:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{message}; CI=true forbids skipping", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        _unavailable("chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=executable, args=BROWSER_ARGS, timeout=TIMEOUT_MS
        )
        try:
            yield launched
        finally:
            launched.close()


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data.startswith(PNG_SIGNATURE), "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_a_real_runs_report_renders_offline_without_errors(
    cli: Cli, example: Callable[[str], str], browser: Any, tmp_path: Path
) -> None:
    """No console error, nothing fetched, and the timeline shows the restart and its recovery."""
    done = cli.run("run", example("restart-recovery.yaml"))
    assert 0 == done.returncode, done.stdout + done.stderr
    [report] = list((cli.workdir / "reports").glob("*/report.html"))
    assert "report.html" in done.stdout
    journal = json.loads((report.parent / "journal.json").read_text())
    [recovery] = journal["recoveries"]

    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    requests: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(report.as_uri(), wait_until="load")

        timeline = page.locator("svg#timeline")
        assert timeline.is_visible()
        box = timeline.bounding_box()
        assert box is not None and box["width"] > 600 and box["height"] > 100
        fault = page.locator("svg#timeline .fault-mark")
        assert 1 == fault.count() and fault.is_visible()
        window = page.locator("svg#timeline .recovery-window")
        assert 1 == window.count() and window.is_visible()
        assert f"{recovery['recovery_ms']:.3f}" == window.get_attribute("data-recovery-ms")
        assert page.get_by_text(f"restart · {recovery['recovery_ms']:.1f} ms").is_visible()
        assert "PASSED" == page.locator("#verdict .word").inner_text()

        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        label = page.locator("#cursor-label")
        assert label.text_content().endswith(" ms")  # the inline script ran (CSP allowed it)

        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        timeline_shot = tmp_path / "timeline.png"
        timeline.screenshot(path=str(timeline_shot))
    finally:
        page.close()

    assert [] == problems
    assert [report.as_uri()] == requests
    for path, min_width, min_height in ((shot, 1000, 900), (timeline_shot, 600, 100)):
        data = path.read_bytes()
        width, height = png_size(data)
        assert width >= min_width and height >= min_height, (path, width, height)
        assert len(data) > 10_000, f"{path} is {len(data)} bytes: a blank image?"
