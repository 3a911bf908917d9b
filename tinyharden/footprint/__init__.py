"""Memory and compute footprint of a model: per layer, in total, as JSON and as a Rich table.

`summarize(model)` reads a (Q)Keras model; `render_table(summary)` draws the result, with
the measured flash and RAM of an exported model when `tinyharden export` added them.
Neither imports TensorFlow, so a saved footprint.json can be shown without it.
"""
from tinyharden.footprint.summary import summarize
from tinyharden.footprint.table import render_table

__all__ = ["summarize", "render_table"]
