"""`tinyharden report`: one view of accuracy, robustness and footprint across runs.

- `collect`: run folders (metrics.json, footprint.json, export.json, attack.json) to rows;
- `references`: the published figures of the study, shown as such;
- `build`: the document (baseline deltas, gates) and `generate`, the whole pipeline;
- `gates`: CI bars; `schema`: the versioned JSON and its validation;
- `render`: table, Markdown, CSV, JSON, self-contained HTML; `plots`: PNGs.

Nothing here imports TensorFlow: a report reads JSON files only.
"""
from tinyharden.report.build import generate
from tinyharden.report.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "generate"]
