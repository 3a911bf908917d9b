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
from typing import Annotated, List, Optional

import typer

from tinyharden.cli.common import choices_option, err, fail, handle_errors, out, state, warn, wide
from tinyharden.cli.parsing import parse_range
from tinyharden.registry import DATASETS, PRESETS

Opt = typer.Option


@handle_errors
def quantize(
    model: Annotated[Optional[Path], typer.Argument(help="A float model: run folder of `tinyharden train`, a Keras .h5/.keras file or a SavedModel folder.", show_default=False)] = None,
    overrides: Annotated[Optional[List[str]], typer.Argument(help="Dotted recipe overrides, e.g. train.lr=1e-3 data.limit_train=5000.", show_default=False)] = None,
    preset: Annotated[Optional[str], choices_option("--preset", registry=PRESETS, help="Quantization preset: {choices}. Overrides the --config preset.")] = None,
    config: Annotated[Optional[Path], Opt("--config", help="YAML quantization section (preset, activation, layers by name or glob; 'float' keeps a weight float).")] = None,
    ends: Annotated[Optional[str], Opt("--ends", help="Preset for the first and last quantizable layers, e.g. int8 (a --config entry for them wins).")] = None,
    finetune_epochs: Annotated[Optional[int], Opt("--finetune-epochs", min=0, help="Quantization-aware fine-tuning epochs; 0 = post-training only. Default: train.epochs if --recipe/overrides set it, else 0.")] = None,
    distill: Annotated[bool, Opt("--distill", help="Fine-tune with knowledge distillation from the float model (train.distill sets weight and temperature).")] = False,
    recipe: Annotated[Optional[Path], Opt("--recipe", help="Recipe for data, train and robustness settings of the fine-tune (its model: is ignored).")] = None,
    data: Annotated[Optional[str], choices_option("--data", registry=DATASETS, help="Dataset of a bare model file: {choices}.")] = None,
    data_path: Annotated[Optional[Path], Opt("--data-path", help="Folder holding the dataset (default: $TINYHARDEN_DATA or ../shared/data).")] = None,
    input_range: Annotated[Optional[str], Opt("--input-range", help="LO,HI the model's inputs span for the dataset's range, e.g. 0,255 for raw pixels.")] = None,
    name: Annotated[Optional[str], Opt("--name", help="Run folder name (default: quantize-<model>-<preset>).")] = None,
    resume: Annotated[Optional[Path], Opt("--resume", help="Continue the fine-tune of this quantize run folder from its last checkpoint.")] = None,
    json_out: Annotated[bool, Opt("--json", help="Print quantize.json to stdout instead of the tables.")] = False,
    unsafe: Annotated[bool, Opt("--unsafe", help="Load a model file with Lambda layers (runs code stored in the file).")] = False,
) -> None:
    """Quantize a float Keras model with QKeras (weights carried over) and optionally fine-tune it.

    Example: tinyharden quantize float.h5 --data cifar10 --preset stq --finetune-epochs 10

    Reports test accuracy and footprint before quantization, right after it and after fine-tuning.

    Writes model.h5, recipe.yaml, metrics.json and quantize.json to a run folder that attack, export and report accept.

    Exit codes: 0 ok; 2 bad input or a layer it cannot quantize; 130 interrupted.
    """
    from tinyharden.cli.progress import TrainProgress
    from tinyharden.jobs.quantize import QuantizeRequest, quantize_job, resume_job

    if resume is not None:
        if any(v is not None for v in (model, preset, config, ends, finetune_epochs, recipe, data, input_range, name)) or overrides or distill:
            fail("--resume takes everything from the run folder; drop the model, options and overrides")
        with TrainProgress() as progress:
            result = resume_job(resume, on_progress=progress.update, on_epoch=progress.epoch_end,
                                on_start=lambda d: err.print(f"resuming {d}", highlight=False))
        return _show(result.record, result.run_dir, json_out)
    if model is None:
        fail(f"give a float model or run folder, e.g. tinyharden quantize model.h5 --data cifar10 --preset stq "
             f"({', '.join(p for p in PRESETS.names() if p != 'float')})")
    request = QuantizeRequest(model=model, overrides=overrides or [], preset=preset, config=config, ends=ends,
                              finetune_epochs=finetune_epochs, distill=distill, recipe=recipe, dataset=data,
                              data_path=data_path, input_range=parse_range(input_range) if input_range else None,
                              name=name, unsafe=unsafe)
    with TrainProgress() as progress:  # silent when there is no epoch to fine-tune
        result = quantize_job(request, state.workspace, on_progress=progress.update, on_epoch=progress.epoch_end,
                              warn=warn,
                              on_start=lambda d: err.print(f"run folder: {d}", highlight=False))
    _show(result.record, result.run_dir, json_out)


def _show(result: dict, run_dir: Path, json_out: bool) -> None:
    if json_out:
        from tinyharden.workspace import to_json

        typer.echo(to_json(result), nl=False)
        return
    wide(layers_table(result))
    wide(stages_table(result))
    out.print(f"model: {run_dir / 'model.h5'}  (details: {run_dir / 'quantize.json'})", highlight=False)


# ----------------------------------------------------------------------------- tables
# Rich caps a table at the console's width, 80 when piped: quantizer names need more (`wide`).


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
