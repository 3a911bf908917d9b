"""Shared fixtures: where the real data lives, and a private cache and workspace per session."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tinyharden.data.base import data_roots  # noqa: E402


def shared_data() -> Path | None:
    for root in data_roots():
        if (root / "cifar10").is_dir() and (root / "mlperf_tiny").is_dir():
            return root
    return None


SHARED = shared_data()
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/data is not beside the checkout")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    # Tests must not depend on (or pollute) the user's ~/.cache.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYHARDEN_CACHE", str(tmp_path_factory.mktemp("thcache")))
        yield


@pytest.fixture
def shared() -> Path:
    if SHARED is None:
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def digits():
    """The embedded digits dataset, split with seed 0; read-only for the tests that share it."""
    from tinyharden.data import load_dataset
    from tinyharden.recipe import DataSpec

    return load_dataset(DataSpec(dataset="digits"), 0)


@dataclass(frozen=True)
class QuickstartRun:
    path: Path
    stderr: str


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory) -> Path:
    """One real run of the README's first command, `tinyharden run recipes/quickstart.yaml`, in its own process as a
    user runs it; shared by the tests of its training bar and of the README's quickstart figures."""
    import subprocess
    import sys

    workspace = tmp_path_factory.mktemp("quickstart-ws")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "tinyharden", "-w", str(workspace), "run", "recipes/quickstart.yaml"],
                          cwd=root, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return QuickstartRun(path=workspace / "quickstart", stderr=proc.stderr)
