"""Sweep files: a recipe and a grid of dotted overrides, validated like recipes.

    name: digits-cv
    recipe: recipes/quickstart.yaml
    grid:
      robustness.jacobian.lambda: [0.001, 0.01]
      data.fold: [0, 1, 2, 3, 4]
    seeds: [0]
    stages: [train, attack, export]
    overrides: [train.epochs=10]
    resources: {cpus: 1, gpus: 0}

Every problem is a one-line `UserError` naming the file and line (`sweep.yaml:4: unknown
key 'grid.robustness.jacobian.lamda'; did you mean 'lambda'?`). Each grid value is
checked against the recipe when the file is read, so a typo fails before any training.
An override may name the cell's own fold and seed, which chains one sweep onto another:
`model.init=runs/kws-cv-dscnn-float/fold-{fold}_seed-{seed}` starts each fold from that fold's run.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tinyharden.errors import UserError
from tinyharden.recipe import Recipe, apply_overrides, validate
from tinyharden.safe_yaml import load_bounded_file, read_yaml_file

Stage = Literal["train", "attack", "export"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resources(_Strict):
    cpus: int = Field(1, ge=1, description="CPU threads of one cell (TensorFlow's pools are pinned to it)")
    gpus: float = Field(0.0, ge=0, description="GPUs a Ray task asks for")


class SweepSpec(_Strict):
    name: str = Field(..., min_length=1)
    recipe: str = Field(..., min_length=1, description="the recipe every cell starts from")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted key -> values; cells are the cross product")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    stages: list[Stage] = Field(default_factory=lambda: ["train", "attack", "export"])
    overrides: list[str] = Field(default_factory=list, description="dotted overrides applied to every cell; "
                                                                  "{fold} and {seed} stand for the cell's own")
    resources: Resources = Field(default_factory=Resources)

    @field_validator("stages")
    @classmethod
    def _train_first(cls, stages: list[str]) -> list[str]:
        if "train" not in stages:
            raise ValueError("stages must include train (a cell trains its recipe, then attacks and exports it)")
        return list(dict.fromkeys(stages))


def _check_grid(spec: SweepSpec, source: str, lines: dict[tuple, int]) -> None:
    for key, values in spec.grid.items():
        where = _where(source, lines, ("grid", key))
        if not values:
            raise UserError(f"{where}: grid.{key} has no values; give a list such as [0, 1]")
        if len({yaml.safe_dump(v) for v in values}) != len(values):
            raise UserError(f"{where}: grid.{key} lists a value twice; each cell must differ")
        if key in ("seed", "name"):
            raise UserError(f"{where}: grid.{key} cannot be swept; use seeds: [...] for seeds "
                            "(the sweep names its cells)")


def _where(source: str, lines: dict[tuple, int], loc: tuple) -> str:
    for i in range(len(loc), 0, -1):
        if loc[:i] in lines:
            return f"{source}:{lines[loc[:i]]}"
    return source


def _schema_error(exc: ValidationError, source: str, lines: dict[tuple, int]) -> UserError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    dotted = ".".join(str(p) for p in loc)
    where = _where(source, lines, loc)
    if err["type"] == "extra_forbidden":
        model = Resources if loc[0] == "resources" else SweepSpec
        valid = list(model.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
        return UserError(f"{where}: unknown key '{dotted}'{hint}")
    if err["type"] == "missing":
        return UserError(f"{where}: missing key '{dotted}'; a sweep needs name, recipe and grid "
                         "(e.g. name: cv, recipe: recipes/quickstart.yaml, grid: {data.fold: [0, 1]})")
    msg = err["msg"].removeprefix("Value error, ")
    return UserError(f"{where}: {dotted}: {msg}")


def read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """The parsed file and the line of every key; unreadable or invalid YAML is a UserError."""
    # Bounded like a recipe: aliases, depth and size are checked before the document is walked.
    return load_bounded_file(path, what="sweep file", fix="pass a YAML sweep such as sweeps/digits-cv.yaml")


def find_recipe(spec: SweepSpec, sweep_file: Path) -> Path:
    """The recipe path, read beside the sweep file first, then from the working directory."""
    given = Path(spec.recipe).expanduser()
    for candidate in ([given] if given.is_absolute() else [sweep_file.parent / given, given]):
        if candidate.is_file():
            return candidate.resolve()
    raise UserError(f"{sweep_file}: recipe '{spec.recipe}' not found beside the sweep file nor in the working "
                    "directory; give its path, e.g. recipe: recipes/quickstart.yaml")


def load_sweep(path: str | Path) -> tuple[SweepSpec, Path, dict[tuple, int]]:
    """(spec, resolved recipe path, key lines) of a sweep file; the grid is checked by `grid.expand`."""
    path = Path(path)
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: a sweep must be a mapping (name, recipe, grid, seeds, stages), "
                        f"got {type(data).__name__}")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(exc, str(path), lines) from None
    _check_grid(spec, str(path), lines)
    return spec, find_recipe(spec, path), lines


PLACEHOLDERS = ("{fold}", "{seed}")


def uses_placeholders(spec: SweepSpec) -> bool:
    """True when an override names the cell's fold or seed, so each cell has its own base recipe."""
    return any(p in text for text in spec.overrides for p in PLACEHOLDERS)


def cell_overrides(spec: SweepSpec, source: str, *, fold: int | None, seed: int) -> list[str]:
    """The fixed overrides with `{fold}` and `{seed}` filled in for one cell.

    A chained cross-validation needs them: `model.init=runs/kws-cv-dscnn-float/fold-{fold}_seed-{seed}`
    starts each fold from the float run of the same fold, whose test speakers it never saw.
    """
    if fold is None and any("{fold}" in text for text in spec.overrides):
        raise UserError(f"{source}: overrides: '{{fold}}' needs a data.fold grid (e.g. grid: {{data.fold: [0, 1, 2]}})")
    return [text.replace("{fold}", str(fold)).replace("{seed}", str(seed)) for text in spec.overrides]


def base_recipe_data(spec: SweepSpec, recipe_file: Path, source: str, *, fold: int | None = None,
                     seed: int = 0) -> dict[str, Any]:
    """The recipe file's mapping with the sweep's fixed overrides (for this fold and seed), validated."""
    from tinyharden.recipe import load_recipe

    load_recipe(recipe_file)  # the recipe's own errors point at its own lines
    data = read_yaml_file(recipe_file) or {}
    overrides = cell_overrides(spec, source, fold=fold, seed=seed)
    if overrides:
        try:
            data = apply_overrides(data, overrides)
        except UserError as exc:
            raise UserError(f"{source}: overrides: {exc}") from None
        validate(data, source=f"{source}: overrides")
    return data


def validate_cell(data: dict[str, Any], where: str) -> Recipe:
    """Validate one cell's recipe mapping; errors name the sweep file's line."""
    recipe = validate(data, source=where)
    d = recipe.data
    if getattr(d, "fold", None) is not None and d.fold >= d.folds:
        raise UserError(f"{where}: data.fold {d.fold} is not below data.folds {d.folds}; "
                        f"sweep folds 0..{d.folds - 1} or raise data.folds")
    return recipe
