"""Recipes: one YAML file that describes a whole run, validated with pydantic.

Every section rejects unknown keys; the error names the key, the file and line, and the
closest valid key, so a misspelt `epoch:` fails loudly instead of being ignored. Dotted
overrides from the command line (`train.epochs=2`) are validated the same way. The
resolved recipe (every default filled in) is saved beside each run's results.
"""
from __future__ import annotations

import difflib
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from tinyharden.dataspec import DEFAULT_DATASET, DataSection, DataSpec, Section as _Section, default_data_spec
from tinyharden.dataspec import owners as owners_of
from tinyharden.errors import UserError
from tinyharden.registry import PRESETS
from tinyharden.quantizer_expr import check_quantizer
from tinyharden.safe_yaml import load_bounded_file, parse_cli_value
from tinyharden.units import Size


def parse_number(value: Any) -> Any:
    """Accept fractions such as "8/255" wherever a float is expected."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(Fraction(text)) if "/" in text else float(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"expected a number or a fraction such as 8/255, got {value!r}") from None
    return value


Number = Annotated[float, BeforeValidator(parse_number)]




class ModelSpec(_Section):
    name: str = "cnn"
    path: str | None = Field(None, description="a Keras model file to start from instead of a zoo model")
    init: str | None = Field(None, description="initialize the zoo model's weights, by layer name, from this model file or run folder (e.g. a float run before QAT)")
    width: float = Field(1.0, gt=0, le=16, description="channel multiplier for zoo models that support it")
    input_shape: list[Annotated[int, Field(gt=0, le=4096)]] | None = Field(None, min_length=1, max_length=4)
    num_classes: int | None = Field(None, ge=2, le=10_000)


# Parsed, never evaluated, and without TensorFlow: a bad quantizer fails as fast as a misspelt key.
QuantizerText = Annotated[str | None, AfterValidator(check_quantizer)]


def _known_preset(value: str | None) -> str | None:
    """A preset name from the registry, or a ValueError with did-you-mean."""
    if value is not None and value not in PRESETS:
        raise ValueError(PRESETS.unknown(value))
    return value


PresetName = Annotated[str, AfterValidator(_known_preset)]


class LayerQuant(_Section):
    preset: PresetName | None = None
    kernel: QuantizerText = None
    bias: QuantizerText = None
    activation: QuantizerText = None


class IncrementalSpec(_Section):
    """Incremental stochastic quantization (Dong et al., BMVC 2017)."""

    ratios: list[float] = Field(default_factory=lambda: [0.5, 0.75, 0.875, 1.0])
    epochs_per_stage: int | None = Field(None, gt=0, le=100_000, description="default: the epochs split evenly over the stages")

    @field_validator("ratios")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < r <= 1 for r in v) or v != sorted(v) or v[-1] != 1.0:
            raise ValueError("ratios must increase within (0, 1] and end at 1.0, e.g. [0.5, 0.75, 0.875, 1.0]")
        return v


class QuantizationSpec(_Section):
    preset: PresetName = "float"
    activation: QuantizerText = Field(None, description="override the preset's activation quantizer, e.g. quantized_relu(4)")
    layers: dict[str, LayerQuant] = Field(default_factory=dict, description="per-layer overrides by layer name or glob")
    incremental: IncrementalSpec | None = None
    temperature_growth: float = Field(
        1.0, ge=1, le=1e6, description="stochastic quantizers' sampling temperature grows geometrically to this multiple "
                               "by the last epoch (1 = constant); sharper sampling late in training matches the "
                               "deterministic inference weights")


class AugmentSpec(_Section):
    crop: int = Field(0, ge=0, le=64, description="pad-and-crop by this many pixels (images)")
    flip: bool = False
    noise: float = Field(0.0, ge=0, le=1, description="background-noise mixing probability (audio)")
    noise_volume: float = Field(0.1, ge=0, le=10)
    shift_ms: float = Field(0.0, ge=0, le=1000, description="random time shift in ms (audio)")


class DistillSpec(_Section):
    """Knowledge distillation: loss = (1 - weight) * CE + weight * T^2 * KL(teacher_T || student_T).

    A quantized student learns the float teacher's soft labels (Hinton et al., 2015), a
    common aid to quantization-aware fine-tuning; whether it helps depends on the model
    (on the MLPerf ResNet-8 it did not: see the README).
    """

    teacher: str | None = Field(None, description="teacher model file or run folder, taking the same inputs; "
                                                  "quantizing with distillation sets it to the float source model")
    weight: float = Field(0.5, ge=0, le=1, description="share of the distillation term in the task loss")
    temperature: float = Field(4.0, gt=0, le=1000, description="softens both models' logits before comparing them")


class TrainSpec(_Section):
    epochs: int = Field(10, gt=0, le=100_000)
    batch_size: int = Field(128, gt=0, le=65_536)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(2e-3, gt=0, le=100)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0, le=100_000)
    step_epochs: list[Annotated[int, Field(ge=0, le=100_000)]] = Field(default_factory=list, description="epochs at which a step schedule multiplies the lr by step_gamma")
    step_gamma: float = Field(0.1, gt=0, le=100)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    checkpoint_every: int = Field(1, gt=0, le=100_000, description="epochs between checkpoints")
    precision: Literal["float32", "mixed_bfloat16"] = Field(
        "float32", description="mixed_bfloat16 computes convolutions in bfloat16 (faster on CPUs with AVX-512 BF16); "
                               "quantizers and the saved model stay float32")
    distill: DistillSpec | None = None


class JacobianLayer(_Section):
    name: str
    # None, not a number, so a resolved recipe written to a run folder reads back the same:
    # a written-out default would otherwise override `jacobian.lambda` on resume.
    lam: Number | None = Field(None, ge=0, le=1e4, alias="lambda", description="this layer's lambda (default: jacobian.lambda)")
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _jr_layers(value: Any) -> Any:
    # `layers: [logits]` is shorthand for `layers: [{name: logits}]`.
    if isinstance(value, list):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


class JacobianSpec(_Section):
    """Jacobian regularization: loss = CE + sum_l lambda_l * ||J_l||_F^2 (random projections)."""

    layers: Annotated[list[JacobianLayer], BeforeValidator(_jr_layers)] = Field(default_factory=lambda: [JacobianLayer(name="logits")])
    lam: Number | None = Field(None, ge=0, le=1e4, alias="lambda", description="lambda for layers that do not set their own")
    projections: int = Field(1, gt=0, le=64)
    batch_fraction: float = Field(1.0, gt=0, le=1, description="share of each batch the regularizer is computed on")
    # One number scales layers whose lambdas differ by orders of magnitude (their Jacobians do),
    # so a trade-off curve is one grid key: robustness.jacobian.scale: [0, 1, 4, 16].
    scale: Number = Field(1.0, ge=0, le=1e4, description="multiplies every layer's lambda (0 turns the penalty off)")
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def lambdas(self) -> list[float]:
        """Each layer's lambda (its own, else `lambda`, else 0.01) times `scale`."""
        default = self.lam if self.lam is not None else 0.01
        return [float(self.scale) * (l.lam if l.lam is not None else default) for l in self.layers]

    def active(self) -> list[tuple[str, float]]:
        """(layer name, lambda) of the layers the penalty applies to: those whose scaled lambda is above 0."""
        return [(l.name, lam) for l, lam in zip(self.layers, self.lambdas()) if lam > 0]


class AdversarialSpec(_Section):
    method: Literal["fgsm", "pgd", "nfgsm"] = "fgsm"
    eps: Number = Field(8 / 255, gt=0, le=1, description="in units of the [0,1] data range")
    steps: int = Field(1, gt=0, le=1000)
    step_size: Number | None = Field(None, gt=0, le=1, description="default: 1.25*eps for fgsm (fast AT), eps for nfgsm, 2.5*eps/steps for pgd")
    noise: Number | None = Field(None, ge=0, le=16, description="random-start half-width in multiples of eps; default 2 for nfgsm, else 1")
    ratio: float = Field(1.0, gt=0, le=1, description="share of adversarial examples in each batch")
    random_start: bool = True


class RobustnessSpec(_Section):
    jacobian: JacobianSpec | None = None
    adversarial: AdversarialSpec | None = None


def _listify(value: Any) -> Any:
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (str, int, float)):
        return [value]
    return value


class AttackSpec(_Section):
    suite: Annotated[list[str], BeforeValidator(_listify)] = Field(default_factory=lambda: ["fgsm", "pgd"])
    eps: Annotated[list[Annotated[Number, Field(gt=0, le=100)]], BeforeValidator(_listify)] = Field(default_factory=lambda: [8 / 255], min_length=1, max_length=32)
    n: int = Field(1000, gt=0, le=1_000_000, description="test samples attacked")
    norm: Literal["linf", "l2"] = "linf"
    eot: int | None = Field(None, gt=0, le=1000)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-attack budget overrides")
    precision: Literal["float32", "mixed_bfloat16"] = Field(
        "float32", description="what white-box attacks (fgsm, pgd, apgd, autoattack) compute in; every example is "
                               "re-predicted and scored in float32")

    @model_validator(mode="after")
    def _linf_within_range(self) -> "AttackSpec":
        if self.norm == "linf" and any(e > 1 for e in self.eps):
            raise ValueError(f"eps {max(self.eps)} exceeds the [0, 1] data range under linf; give eps such as 8/255")
        return self


class ExportSpec(_Section):
    formats: Annotated[list[Literal["tflite", "c"]], BeforeValidator(_listify)] = Field(default_factory=lambda: ["tflite", "c"])
    calib: int = Field(500, gt=0, le=1_000_000)
    max_drop: float = Field(1.0, ge=0, le=100, description="largest accuracy drop in points accepted at export")
    max_flash: Size | None = Field(None, gt=0, description="bytes, or 64K / 1M")
    max_ram: Size | None = Field(None, gt=0, description="bytes, or 64K / 1M")


class Recipe(_Section):
    name: str = "run"
    seed: int = Field(0, ge=0, le=2**31 - 1, description="every random choice derives from it")
    data: DataSection = Field(default_factory=default_data_spec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    quantization: QuantizationSpec = Field(default_factory=QuantizationSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    robustness: RobustnessSpec = Field(default_factory=RobustnessSpec)
    attack: AttackSpec | None = None
    export: ExportSpec | None = None

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


# --------------------------------------------------------------------------- loading

def _section_model(path: tuple, raw: Any = None) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `path` of the recipe mapping `raw` (for 'did you mean')."""
    model: Any = Recipe
    for part in path:
        raw = _child(raw, part)
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None)
        if field is None:
            return None
        model = _inner_model(field.annotation)
        if hasattr(model, "specialize"):
            model = model.specialize(raw)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _child(raw: Any, part: Any) -> Any:
    if isinstance(raw, dict):
        return raw.get(part)
    if isinstance(raw, list) and isinstance(part, int) and 0 <= part < len(raw):
        return raw[part]
    return None


def _inner_model(annotation: Any) -> Any:
    import typing

    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in args:
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


def _valid_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _format_error(err: dict, source: str, lines: dict[tuple, int], raw: Any = None) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    line = None
    for i in range(len(loc), 0, -1):
        line = lines.get(loc[:i])
        if line:
            break
    where = f"{source}:{line}" if line else source
    if err["type"] == "extra_forbidden":
        parent = _section_model(loc[:-1], raw)
        key = str(loc[-1])
        hint = ""
        if parent is not None and issubclass(parent, DataSpec) and (owners := owners_of(key)):
            dataset = _child(_child(raw, "data"), "dataset") or DEFAULT_DATASET
            return (f"{where}: unknown key '{dotted}' for dataset {dataset}: it belongs to {' and '.join(owners)}; "
                    "remove it or change data.dataset")
        if parent is not None:
            valid = _valid_keys(parent)
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
        return f"{where}: unknown key '{dotted}'{hint}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return f"{where}: {dotted}: {msg}"


def validate(data: Any, *, source: str = "<recipe>", lines: dict[tuple, int] | None = None) -> Recipe:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{source}: a recipe must be a mapping of sections (name, seed, data, model, ...), got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise UserError(_format_error(first, source, lines or {}, data) + suffix) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise UserError(f"override '{text}' must look like section.key=value, e.g. train.epochs=2")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise UserError(f"override '{text}': empty key part; use section.key=value, e.g. train.epochs=2")
    value = parse_cli_value(raw, source=f"override '{key.strip()}'")
    return parts, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    import copy

    data = copy.deepcopy(data) if data else {}
    for text in overrides:
        parts, value = parse_override(text)
        set_dotted(data, parts, value, what=f"override '{text}'")
    return data


def set_dotted(data: dict, parts: list[str], value: Any, *, what: str) -> None:
    """data[parts[0]][parts[1]]... = value, making sections on the way; `what` names the source in errors."""
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise UserError(f"{what}: '{'.'.join(parts[:i + 1])}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe; every problem is a one-line `UserError`."""
    path = Path(path)
    data, lines = load_bounded_file(path, what="recipe", fix="pass the path of a YAML recipe such as recipes/quickstart.yaml")
    if overrides:
        # Validate the file alone first, so its errors point at its lines.
        validate(data, source=str(path), lines=lines)
        # Then one override at a time, so an error names the override that caused it, not a line of the file.
        for text in overrides:
            data = apply_overrides(data or {}, [text])
            recipe = validate(data, source=f"{path}: override '{text}'")
        return recipe
    return validate(data, source=str(path), lines=lines)


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.resolved(), sort_keys=False)


def with_data_path(recipe: Recipe, path: str | Path | None) -> Recipe:
    """`recipe` reading its dataset from the folder `path` (None: unchanged).

        with_data_path(load_recipe("recipes/speech-stq-jr.yaml"), "/data/speech_commands").data.path

    The folder given is the data itself, so a second test folder (data.test_path) is dropped.
    """
    if path is None:
        return recipe
    return recipe.model_copy(update={"data": recipe.data.model_copy(update={"path": str(path), "test_path": None})})
