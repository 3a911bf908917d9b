"""`tinyharden quantize MODEL_OR_RUN --preset stq`: a float model -> its deeply quantized, fine-tuned twin.

MODEL_OR_RUN is a run folder written by `tinyharden train` (its recipe supplies the
dataset, seed, batch size, augmentation and robustness) or any float Keras model file,
which needs --data (or a --recipe with a data: section). A model trained on another input
range than the dataset's (the MLPerf Tiny ResNet-8 takes 0..255 pixels: --input-range
0,255) gets a Rescaling layer in front, so the quantized run folder takes the dataset's
own [0,1] units like every other run folder.

Exit codes: 0 ok; 2 bad arguments, input files or unsupported layers; 130 interrupted.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tinyharden.cli.common import err, fail, handle_errors, out, progress_enabled, state, warn
from tinyharden.parsing import parse_range
from tinyharden.errors import UserError

_PRESETS = "stq, ternary, binary, stochastic_binary, int8, int4"


def _check_preset(name: Optional[str], flag: str) -> None:
    from tinyharden.quantization.presets import PRESETS

    if name is not None and name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UserError(f"{flag} '{name}' is not a preset; choose from {', '.join(PRESETS)}{hint}")


def _data_section(data: Optional[str], data_path: Optional[Path]) -> dict:
    from tinyharden.recipe import DataSpec

    choices = DataSpec.model_fields["dataset"].annotation.__args__
    if data is not None and data not in choices:
        raise UserError(f"unknown dataset '{data}'; --data takes one of {', '.join(choices)}")
    section = {"dataset": data} if data else {}
    if data_path is not None:
        section["path"] = str(data_path)
    return section


@handle_errors
def quantize(
    model: Optional[Path] = typer.Argument(None, help="A float model: run folder of `tinyharden train`, or a Keras .h5/.keras file.", show_default=False),
    overrides: Optional[List[str]] = typer.Argument(None, help="Dotted recipe overrides, e.g. train.lr=1e-3 data.limit_train=5000.", show_default=False),
    preset: Optional[str] = typer.Option(None, "--preset", help=f"Quantization preset: {_PRESETS}. Overrides the --config preset."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML quantization section (preset, activation, layers by name or glob; 'float' keeps a weight float)."),
    ends: Optional[str] = typer.Option(None, "--ends", help="Preset for the first and last quantizable layers, e.g. int8 (a --config entry for them wins)."),
    finetune_epochs: Optional[int] = typer.Option(None, "--finetune-epochs", min=0, help="Quantization-aware fine-tuning epochs; 0 = post-training only. Default: train.epochs if --recipe/overrides set it, else 0."),
    distill: bool = typer.Option(False, "--distill", help="Fine-tune with knowledge distillation from the float model (train.distill sets weight and temperature)."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="Recipe for data, train and robustness settings of the fine-tune (its model: is ignored)."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset of a bare model file: cifar10, speech_commands, digits, synthetic."),
    data_path: Optional[Path] = typer.Option(None, "--data-path", help="Folder holding the dataset (default: $TINYHARDEN_DATA or ../shared/data)."),
    input_range: Optional[str] = typer.Option(None, "--input-range", help="LO,HI the model's inputs span for the dataset's range, e.g. 0,255 for raw pixels."),
    name: Optional[str] = typer.Option(None, "--name", help="Run folder name (default: quantize-<model>-<preset>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the fine-tune of this quantize run folder from its last checkpoint."),
    json_out: bool = typer.Option(False, "--json", help="Print quantize.json to stdout instead of the tables."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Load a model file with Lambda layers (runs code stored in the file)."),
) -> None:
    """Quantize a float Keras model with QKeras (weights carried over) and optionally fine-tune it.

    Reports test accuracy and footprint before quantization, right after it and after fine-tuning.

    Writes model.h5, recipe.yaml, metrics.json and quantize.json to a run folder that attack, export and report accept.

    Exit codes: 0 ok; 2 bad input or a layer it cannot quantize; 130 interrupted.
    """
    if resume is not None:
        if any(v is not None for v in (model, preset, config, ends, finetune_epochs, recipe, data, input_range, name)) or overrides or distill:
            fail("--resume takes everything from the run folder; drop the model, options and overrides")
        return _resume(resume, json_out)
    if model is None:
        fail(f"give a float model or run folder, e.g. tinyharden quantize model.h5 --data cifar10 --preset stq ({_PRESETS})")
    from tinyharden import pretrained

    model = pretrained.resolve(model)
    _check_preset(preset, "--preset")
    _check_preset(ends, "--ends")
    model_range = parse_range(input_range) if input_range is not None else None
    data_section = _data_section(data, data_path)

    for flag, path in (("--config", config), ("--recipe", recipe)):
        if path is not None and not path.is_file():  # before TensorFlow loads: a typo fails at once
            raise UserError(f"{flag} file '{path}' not found; pass the path of a YAML file")
    from tinyharden.quantization.pipeline import read_quant_config

    quant = read_quant_config(config) if config is not None else {}
    is_run = model.is_dir() and (model / "recipe.yaml").is_file()
    if not is_run and not data_section.get("dataset") and recipe is None:
        raise UserError(f"'{model}' is a bare model file: pass --data (cifar10, speech_commands, digits, synthetic) "
                        "or a --recipe with a data: section")

    from tinyharden.data import load_dataset
    from tinyharden.models.loading import load_model, logits_model
    from tinyharden.quantization.convert import check_supported, weighted_layer_names
    from tinyharden.quantization.pipeline import build_recipe
    from tinyharden.quantization.pipeline import quantize as run_quantize
    from tinyharden.recipe import load_recipe

    inherited = None
    if is_run:
        if not (model / "model.h5").is_file():
            raise UserError(f"run folder '{model}' has no model.h5; finish training it first (tinyharden train --resume {model})")
        inherited = load_recipe(model / "recipe.yaml")
        if data_section.get("dataset"):
            warn(f"--data is ignored for run folder '{model}': its recipe names the dataset ({inherited.data.dataset})")
        data_section = {}
    float_model = load_model(model, unsafe=unsafe)
    check_supported(logits_model(float_model))  # before any data is loaded: the cheap failure first
    if ends is not None:
        names = weighted_layer_names(logits_model(float_model))
        ends_layers = {n: {"preset": ends} for n in dict.fromkeys([names[0], names[-1]])} if names else {}
        quant = {**quant, "layers": {**ends_layers, **(quant.get("layers") or {})}}
    if preset is not None:
        quant = {**quant, "preset": preset}
    parsed, epochs = build_recipe(
        name=name or "quantize", data=data_section, quantization=quant, inherited=inherited,
        recipe_file=recipe, overrides=overrides or [], finetune_epochs=finetune_epochs, distill=distill)
    if name is None:
        parsed.name = f"quantize-{model.name if is_run else model.stem}-{parsed.quantization.preset}"
    ds = load_dataset(parsed.data, parsed.seed)
    from tinyharden.cli.render import TrainProgress

    run_dir: list[Path] = []
    progress = TrainProgress(enabled=progress_enabled() and epochs > 0)
    with progress:
        try:
            result = run_quantize(float_model, parsed, ds, state.workspace, source=str(model), finetune_epochs=epochs,
                                  model_range=model_range, on_progress=progress.update,
                                  on_start=lambda d: _started(run_dir, d, "run folder"))
        except KeyboardInterrupt:
            if not run_dir or not epochs:
                raise
            raise UserError(f"interrupted while fine-tuning; resume with: "
                            f"tinyharden quantize --resume {run_dir[0]}", code=130) from None
    _show(result, run_dir[0], json_out)


def _started(box: list, run_dir: Path, what: str) -> None:
    box.append(run_dir)
    err.print(f"{what}: {run_dir}", highlight=False)


def _resume(run_dir: Path, json_out: bool) -> None:
    from tinyharden.cli.render import TrainProgress
    from tinyharden.quantization.pipeline import resume

    progress = TrainProgress(enabled=progress_enabled())
    with progress:
        try:
            result = resume(run_dir, on_progress=progress.update,
                            on_start=lambda d: err.print(f"resuming {d}", highlight=False))
        except KeyboardInterrupt:
            raise UserError(f"interrupted while fine-tuning; resume with: tinyharden quantize --resume {run_dir}",
                            code=130) from None
    _show(result, run_dir, json_out)


def _show(result: dict, run_dir: Path, json_out: bool) -> None:
    if json_out:
        from tinyharden.workspace import to_json

        typer.echo(to_json(result), nl=False)
        return
    _print(layers_table(result))
    _print(stages_table(result))
    out.print(f"model: {run_dir / 'model.h5'}  (details: {run_dir / 'quantize.json'})", highlight=False)


# ----------------------------------------------------------------------------- tables
# Rich caps a table at the console's width, 80 when piped: quantizer names need more.

def _print(renderable) -> None:
    if out.is_terminal:
        out.print(renderable)
        return
    width = out.width
    out.width = max(width, 120)
    try:
        out.print(renderable)
    finally:
        out.width = width


def _q(expr: str | None) -> str:
    """A quantizer expression without its scale argument (quantize.json keeps the full one)."""
    if expr is None:
        return "[dim]float[/]"
    import re

    return re.sub(r"\(\)$", "", re.sub(r",?\s*alpha=('[^']*'|[^,)]*)", "", expr))


def layers_table(result: dict):
    """One row per source layer: what it became, its quantizers and its weight footprint."""
    from rich.table import Table

    fp = {r["name"]: r for r in result["footprint"]["layers"]}
    t = Table(title=f"quantize: {result['run']}", title_justify="left")
    t.add_column("layer (twin type)", overflow="fold")
    for header in ("kernel", "bias", "activation"):
        t.add_column(header, overflow="fold")
    for header in ("params", "bits", "bytes"):
        t.add_column(header, justify="right", no_wrap=True)
    for row in result["layers"]:
        rec = fp.get(row["name"], {})
        weighted = row["source"] in ("Conv2D", "DepthwiseConv2D", "Dense")
        has_bias = any(w["name"] == "bias" for w in rec.get("weights", []))
        is_relu = row["source"] in ("Activation", "ReLU") and row["role"] != "kept"
        bits = "/".join(dict.fromkeys(str(w["bits"]) for w in rec.get("weights", []))) or "-"
        params = rec.get("params", 0)
        twin = row["twin"].replace("QActivation", "QAct") if row["role"] != "kept" else "kept"
        t.add_row(f"{row['name']} [dim]({twin})[/]",
                  _q(row["kernel"]) if weighted else "",
                  _q(row["bias"]) if weighted and has_bias else "",
                  _q(row["activation"]) if is_relu or (weighted and "+" in row["twin"]) else "",
                  f"{params:,}" if params else "", bits if params else "", f"{rec['packed_bytes']:,}" if params else "")
    lines = ["bits: kernel/bias (batch norm: float); bytes: weights packed at their quantized width"]
    rescale = result["input"]["rescaling"]
    if rescale:
        lines.append(f"'{rescale['layer']}' (Rescaling) maps the data range {result['input']['data_range']} onto "
                     f"the model's {result['input']['model_range']}: x*{rescale['scale']:g}{rescale['offset']:+g}")
    t.caption = "\n".join(lines)
    t.caption_justify = "left"
    return t


def stages_table(result: dict):
    """Accuracy and footprint before quantization, right after it, and after fine-tuning."""
    from rich.table import Table

    from tinyharden.cli.render import pct

    labels = {"float": "float", "post_training": "quantized (PTQ)", "finetuned": "fine-tuned (QAT)"}
    stages = result["stages"]
    t = Table(title=f"test accuracy, {result['dataset']['name']} ({stages['float']['n']:,} samples)",
              title_justify="left")
    for header in ("stage", "accuracy", "95% CI", "drop", "weights (B)", "vs float"):
        t.add_column(header, justify="left" if header == "stage" else "right", no_wrap=True)
    for key, label in labels.items():
        s = stages[key]
        if s is None:
            continue
        tot = s["footprint"]
        drop = "" if key == "float" else f"{result['drop_points'][key]:.2f} pt"
        comp = tot.get("compression")
        t.add_row(label, pct(s["accuracy"]), f"{pct(s['ci95'][0])}-{pct(s['ci95'][1])}", drop,
                  f"{tot['packed_bytes']:,}", f"{comp:.1f}x less" if comp and comp > 1 else "")
    ft = result.get("finetune")
    lines = [f"{stages['float']['footprint']['params']:,} parameters; drop in points from float"]
    if ft:
        kd = ft.get("distill")
        teacher = f", distilled (weight {kd['weight']:g}, t {kd['temperature']:g})" if kd else ""
        lines.append(f"fine-tuned {ft['epochs']} epochs ({ft['optimizer']}, lr {ft['lr']:g}, {ft['schedule']}, "
                     f"defense {ft['defense']}{teacher}) in {ft['train_seconds']:.0f} s")
    else:
        lines.append("not fine-tuned (pass --finetune-epochs N)")
    t.caption = "\n".join(lines)
    t.caption_justify = "left"
    return t
