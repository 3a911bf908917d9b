"""Shared fixtures: where the real data lives, and a private cache and workspace per session."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# pytest-xdist workers export COLUMNS=80 / LINES=24, and Rich fixes a console's width from COLUMNS when the
# console is made (at import). A user's pipe usually has neither, so the tests see what a script would;
# tests that need a width set COLUMNS themselves.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tinyharden.data.base import data_roots  # noqa: E402


def shared_data() -> Path | None:
    for root in data_roots():
        if (root / "cifar10").is_dir() and (root / "mlperf_tiny").is_dir():
            return root
    return None


SHARED = shared_data()
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/data is not beside the checkout")

# Under pytest-xdist (`-n 2 --dist loadgroup`, pyproject's addopts) a group runs on one worker. A test that uses a
# module fixture (a model trained once for the module) is grouped with its module, so the fixture is built once, not on
# both workers; the tests that share a session run (quickstart_run) or the sweep's local_sweep form a group each; every
# other test is its own unit and goes to whichever worker is free. The long units are queued first (longest first: how
# a greedy schedule keeps both workers busy to the end); the rest keep their file order.
HEAVY_FIRST = ["sweep-local", "quickstart",
               "tests/test_sweep.py::test_a_sweep_interrupted_mid_cell_resumes_with_no_cell_run_twice",
               "tests/test_sweep.py::test_a_failing_cell_is_recorded_and_the_others_go_on"]


def _group(item) -> str:
    fixtures = getattr(item, "fixturenames", ())
    if "quickstart_run" in fixtures:
        return "quickstart"
    if "local_sweep" in fixtures:
        return "sweep-local"
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info is not None else ()
    if any(d.scope == "module" for chain in defs for d in chain):
        return item.nodeid.split("::")[0]
    return item.nodeid


# tryfirst: xdist's own hook reads the xdist_group marks (and renames the items by group) when it runs, and it runs
# before a conftest's hook otherwise, which would leave every test ungrouped.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    for item in items:
        if _group(item) != item.nodeid:  # a test alone needs no mark: loadgroup sends unmarked tests anywhere
            item.add_marker(pytest.mark.xdist_group(_group(item)))
    items.sort(key=lambda item: rank.get(_group(item), len(rank)))  # stable: file order within a rank


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    # Tests must not depend on (or pollute) the user's ~/.cache. The xdist workers of one run share theirs (the folder
    # above each worker's basetemp), so CIFAR-10 is decoded once per run, not once per worker; cache writes are atomic.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        cache = tmp_path_factory.getbasetemp().parent / "thcache"
        cache.mkdir(exist_ok=True)
    else:
        cache = tmp_path_factory.mktemp("thcache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYHARDEN_CACHE", str(cache))
        yield


@pytest.fixture
def shared() -> Path:
    if SHARED is None:
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED


def prototype_images(n: int, seed: int, *, spread: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """`n` 16x16x3 images in [0, 1] of 10 classes whose prototypes differ by a few percent in every pixel, and labels.

    Linearly separable with a clear margin, yet in 768 dimensions an eps of 8/255 crosses it: what an undefended
    model that attacks must break looks like. The prototypes are fixed; `seed` draws the samples around them.
    """
    protos = 0.5 + np.random.default_rng(0).uniform(-spread, spread, (10, 16, 16, 3))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    return np.clip(protos[y] + rng.normal(0, 0.08, (n, 16, 16, 3)), 0, 1).astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="session")
def prototypes():
    """`prototype_images` for the tests (a fixture: test modules do not import conftest)."""
    return prototype_images


@pytest.fixture(scope="session")
def linear16():
    """A linear classifier of `prototype_images`, trained once per worker: clean near 100%, it falls at 8/255."""
    from tinyharden._tf import keras
    from tinyharden.attacks.target import KerasTarget

    keras.utils.set_random_seed(0)
    xtr, ytr = prototype_images(1024, 1)
    inp = keras.Input(shape=(16, 16, 3))
    model = keras.Model(inp, keras.layers.Dense(10)(keras.layers.Flatten()(inp)), name="linear16")
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(xtr, ytr, epochs=20, batch_size=64, verbose=0)
    return KerasTarget(model, name="linear16")


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

