"""Fixtures of the viewer tests: one demo run per baseline through the real CLI, a headless Chromium."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from e2e_utils import describe, run_medvision_eval

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory, demo_root) -> Path:
    """`medvision-eval run` of medvision_random and medvision_prior on medvision_demo (like `make demo`)."""
    base = tmp_path_factory.mktemp("viewer_runs")
    for model in ("random", "prior"):
        proc = run_medvision_eval(
            ["run", "--model", f"medvision_{model}", "--tasks", "medvision_demo", "--output_path",
             str(base / model), "--log_samples", "--verbosity", "WARNING"]  # fmt: skip
        )
        assert proc.returncode == 0, describe(proc)
    return base


@pytest.fixture
def browser_page():
    """A fresh headless Chromium page (Debian's /usr/bin/chromium; never a downloaded browser)."""
    if not CHROMIUM.is_file():
        # CI (.ci/run sets CI_REQUIRE_BROWSER=1 after installing Chromium) must run the browser tests, not skip them
        if os.environ.get("CI_REQUIRE_BROWSER") == "1":
            pytest.fail("/usr/bin/chromium is missing although CI_REQUIRE_BROWSER=1 (.ci/run installs it)")
        pytest.skip("/usr/bin/chromium is missing (.ci/run installs it with apt-get)")
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tempfile.mkdtemp(prefix="viewer-chromium-")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )  # fmt: skip
        page = context.new_page()
        page.events = []  # type: ignore[attr-defined]
        page.on("console", lambda m: page.events.append(f"console {m.type}: {m.text}"))
        page.on("pageerror", lambda e: page.events.append(f"pageerror: {e}"))
        page.on("dialog", lambda d: (page.events.append(f"dialog: {d.message}"), d.dismiss()))
        try:
            yield page
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
