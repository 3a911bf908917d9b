"""Grid expansion: a sweep file to its cells, each a fully resolved recipe with a stable id.

    >>> from tinyharden.sweep.grid import cell_id
    >>> cell_id({"robustness.jacobian.lambda": 0.001, "data.fold": 2}, seed=0)
    'lambda-0.001_fold-2_seed-0'

A cell's id is its folder name under `<storage>/<sweep>/`, so it depends only on its grid
values and seed: re-running a sweep finds the same folders. Cells that differ only by
fold and seed form one grid point, the unit the aggregate averages over.
"""
from __future__ import annotations

from collections.abc import Sequence

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyharden.errors import UserError
from tinyharden.recipe import Recipe
from tinyharden.sweep.spec import SweepSpec, base_recipe_data, load_sweep, uses_placeholders, validate_cell

FOLD_KEY = "data.fold"
_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


@dataclass(frozen=True)
class Cell:
    """One training of the sweep: its grid values, seed and resolved recipe."""

    id: str
    values: dict[str, Any]
    seed: int
    recipe: dict[str, Any] = field(repr=False)

    @property
    def point(self) -> dict[str, Any]:
        """The grid values that define its grid point (every key but the fold)."""
        return {k: v for k, v in self.values.items() if k != FOLD_KEY}

    @property
    def fold(self) -> int | None:
        return self.values.get(FOLD_KEY)


@dataclass(frozen=True)
class Sweep:
    spec: SweepSpec
    source: Path
    recipe_file: Path
    cells: list[Cell]

    @property
    def swept(self) -> list[str]:
        """Grid keys other than the fold: the axes of the aggregate."""
        return [k for k in self.spec.grid if k != FOLD_KEY]


def _short_names(keys: list[str]) -> dict[str, str]:
    # The last part names a key unless two keys share it; then the whole dotted key does.
    last = [k.split(".")[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return _UNSAFE.sub("-", str(value)).strip("-") or "x"


def cell_id(values: dict[str, Any], *, seed: int) -> str:
    names = _short_names(list(values))
    parts = [f"{names[k]}-{_text(v)}" for k, v in values.items()] + [f"seed-{seed}"]
    return "_".join(_UNSAFE.sub("-", p) for p in parts)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    from tinyharden.recipe import set_dotted as set_path

    set_path(data, key.split("."), value, what=f"grid key '{key}'")


def _cell_recipe(base: dict[str, Any], values: dict[str, Any], seed: int, name: str,
                 where: dict[str, str]) -> Recipe:
    data = copy.deepcopy(base)
    data["seed"], data["name"] = seed, name
    for key, value in values.items():
        try:
            set_dotted(data, key, value)
        except UserError as exc:
            raise UserError(f"{where[key]}: {exc}") from None
    for key, value in values.items():  # one key at a time, so the error names the culprit's line
        probe = copy.deepcopy(base)
        set_dotted(probe, key, value)
        validate_cell(probe, where[key])
    return validate_cell(data, where[next(iter(values))] if values else "sweep")


def expand(path: str | Path, *, overrides: Sequence[str] = ()) -> Sweep:
    """Read, validate and expand a sweep file; every cell's recipe is validated here.

    `overrides` join the file's own fixed overrides (e.g. ["data.path=/data"]: the same data folder for every cell).
    """
    spec, recipe_file, lines = load_sweep(path)
    if overrides:
        spec = spec.model_copy(update={"overrides": [*spec.overrides, *overrides]})
    source = str(path)
    shared = None if uses_placeholders(spec) else base_recipe_data(spec, recipe_file, source)
    where = {k: f"{source}:{lines.get(('grid', k), '')}".rstrip(":") for k in spec.grid}
    cells: list[Cell] = []
    keys = list(spec.grid)
    for combo in itertools.product(*(spec.grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        for seed in spec.seeds:
            cid = cell_id(values, seed=seed)
            base = shared if shared is not None else base_recipe_data(
                spec, recipe_file, source, fold=values.get(FOLD_KEY), seed=seed)
            recipe = _cell_recipe(base, values, seed, cid, where)
            cells.append(Cell(cid, values, seed, recipe.resolved()))
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"{source}: two cells would share the folder '{dup}' (grid values that print alike); "
                        "make the grid values distinct")
    return Sweep(spec, Path(path), recipe_file, cells)
