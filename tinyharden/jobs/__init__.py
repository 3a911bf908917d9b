"""The application layer: one typed function per command, between the CLI and the domain packages.

    from tinyharden.jobs.run import run
    result = run(load_recipe("recipes/quickstart.yaml"), Path("runs"))

Each job takes pydantic specs (the recipe, a request model) and a workspace or run
folder, and returns a typed result; it parses no command-line strings and prints
nothing (progress goes to callbacks). The CLI (tinyharden/cli) parses, calls a job and
renders. A new command is one module here plus one in cli/:

  train.py     train / resume a recipe                      -> TrainResult
  quantize.py  float model -> quantized, fine-tuned twin    -> QuantizeResult
  attack.py    AttackRequest -> attack.json, attacks/<name>  -> AttackOutcome
  export.py    ExportRequest -> int8 TFLite, C, footprint   -> ExportResult
  report.py    ReportRequest -> the report document         -> ReportResult
  run.py       a recipe end to end in one run folder        -> RunResult
  runs.py      a workspace's run folders, newest first      -> RunsOutput
"""
