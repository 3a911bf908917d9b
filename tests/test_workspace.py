"""Run folders never collide; writes are atomic (an interrupted write leaves the old file)."""
from __future__ import annotations

import json

import pytest

from tinyharden.workspace import atomic_path, atomic_write_json, env_info, new_run_dir


def test_new_run_dir_numbers_existing_names(tmp_path):
    a = new_run_dir(tmp_path, "exp")
    b = new_run_dir(tmp_path, "exp")
    c = new_run_dir(tmp_path, "exp")
    assert [p.name for p in (a, b, c)] == ["exp", "exp-2", "exp-3"]
    assert new_run_dir(tmp_path, "../../etc").parent == tmp_path


def test_atomic_write_replaces_whole_file(tmp_path):
    import os

    p = tmp_path / "m.json"
    atomic_write_json(p, {"a": 1})
    assert json.loads(p.read_text()) == {"a": 1}
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_interrupted_write_keeps_the_old_file_and_no_temp(tmp_path):
    p = tmp_path / "m.json"
    atomic_write_json(p, {"v": "old"})
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text('{"v": "ha')  # half-written
            raise RuntimeError("killed mid-write")
    assert json.loads(p.read_text()) == {"v": "old"}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.json"]


def test_env_info_has_versions_and_seed():
    info = env_info(seed=7)
    assert info["seed"] == 7 and info["versions"]["python"].startswith("3.")
    assert "tensorflow" in info["versions"]
