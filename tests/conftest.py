"""Shared fixtures: offline hub settings, a private cache folder, and a phantom data root."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

# Nothing reaches a hub at run time; caches stay inside the test session.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
_SESSION_CACHE = Path(tempfile.mkdtemp(prefix="medvision-test-cache-"))
os.environ["MEDVISION_CACHE_DIR"] = str(_SESSION_CACHE)
for _name in list(os.environ):
    if _name.upper().startswith("MEDVISION_") and _name != "MEDVISION_CACHE_DIR":
        del os.environ[_name]


@pytest.fixture(scope="session")
def demo_root() -> Path:
    """The phantom root generated the way `medvision_demo` generates it (cache folder, first use)."""
    from medvision_tasks.demo import ensure_demo_root

    return ensure_demo_root()


@pytest.fixture(scope="session")
def demo_manifest(demo_root: Path) -> dict:
    return json.loads((demo_root / "demo_manifest.json").read_text())


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Each test starts with no active adapter and no frozen settings."""
    from medvision_tasks import settings

    settings.reset()
    yield
    settings.reset()


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory) -> Path:
    """Synthetic root with every benchmark config under its real dataset name (tests/fixture_root.py).

    Read-only for tests: copy a dataset folder into tmp_path before changing it.
    """
    from fixture_root import build_fixture_root

    return build_fixture_root(tmp_path_factory.mktemp("fixture_root"))
