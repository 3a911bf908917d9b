"""Fuzzing: generated malformed recipes and npz files never escape as anything but a one-line refusal.

Every generated input either validates or raises `UserError` with a one-line message, in
bounded time; through the CLI, a refused input exits 2 with one line and leaves no run folder.
"""
from __future__ import annotations

import io
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tinyharden.cli.app import app
from tinyharden.errors import UserError
from tinyharden import quantizer_expr as expr  # noqa: F401
from tinyharden.quantization import presets  # noqa: F401 - imported (TensorFlow) before any timing

KEYS = ["name", "seed", "data", "model", "quantization", "train", "robustness", "attack", "export", "dataset",
        "path", "epochs", "preset", "kernel", "layers", "width", "lambda", "eps", "shape", "activation", "x"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(["relu", "quantized_bits(4,0,alpha=eval)", "1e9", "-1",
                                                           "stq", "float", "digits", "8/255", "get_quantizer(x)"]))
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)),
    max_leaves=40)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _text_of(doc, raw: bytes, mode: int) -> str:
    if mode == 0:
        return yaml.safe_dump(doc)
    if mode == 1:  # arbitrary bytes, as a damaged file
        return raw.decode("utf-8", "replace")
    nested = "x: " + "[" * (raw[0] if raw else 1) * 3 + "]" * (raw[0] if raw else 1) * 3  # deep nesting
    return nested + "\n"


@FUZZ
@given(doc=documents, raw=st.binary(max_size=300), mode=st.integers(0, 2))
def test_generated_recipes_validate_or_refuse_in_one_line(tmp_path, doc, raw, mode):
    from tinyharden.recipe import load_recipe

    path = tmp_path / "fuzz.yaml"
    path.write_text(_text_of(doc, raw, mode), encoding="utf-8")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        load_recipe(path)
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - start < 5.0  # generous: tracemalloc slows Python several times
    assert peak < 64 * 2**20


arrays = st.builds(
    lambda shape, kind, fill: np.full(shape, fill, dtype={"u": np.uint8, "f": np.float32, "i": np.int64, "b": bool}[kind]),
    st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple), st.sampled_from("ufib"), st.integers(0, 255))


def _npz_bytes(members: dict, cut: int | None) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **members)
    data = buf.getvalue()
    return data if cut is None else data[: cut % (len(data) + 1)]


@FUZZ
@given(x=arrays, y=arrays, names=st.sampled_from([("x_test", "y_test"), ("x_test", "labels"), ("a", "b")]),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_generated_npz_files_load_or_refuse_in_one_line(tmp_path, x, y, names, cut):
    from tinyharden.data import load_dataset
    from tinyharden.recipe import DataSpec

    folder = tmp_path / "d"
    folder.mkdir(exist_ok=True)
    for i in range(1, 6):
        np.savez(folder / f"cifar10_train_batch{i}.npz", x_train=np.zeros((4, 32, 32, 3), np.uint8),
                 y_train=np.arange(4, dtype=np.uint8))
    (folder / "cifar10_test.npz").write_bytes(_npz_bytes({names[0]: x, names[1]: y}, cut))
    start = time.perf_counter()
    try:
        ds = load_dataset(DataSpec(dataset="cifar10", path=str(folder)), 0)
    except UserError as exc:
        assert "\n" not in str(exc) and "cifar10_test.npz" in str(exc), str(exc)
    else:  # only a genuinely valid file may pass
        assert ds.x_test.shape[1:] == (32, 32, 3) and len(ds.x_test) == len(ds.y_test)
        assert ds.y_test.min() >= 0 and ds.y_test.max() < 10
    assert time.perf_counter() - start < 5.0


@settings(max_examples=8, deadline=20000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_refused_generated_recipes_exit_2_in_one_line_without_a_folder(tmp_path, doc):
    from tinyharden.recipe import load_recipe

    path = tmp_path / "fuzz.yaml"
    # an unknown top-level key guarantees a refusal, so nothing ever trains here
    body = {"zz_unknown": 1, **doc} if isinstance(doc, dict) else {"zz_unknown": doc}
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    with pytest.raises(UserError):
        load_recipe(path)
    ws = tmp_path / "ws"
    result = CliRunner().invoke(app, ["-w", str(ws), "train", str(path)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert not ws.exists() or not any(Path(ws).iterdir())
