"""`tinyharden sweep`: folds x recipes x budgets as normal run folders, here or on a Ray cluster.

- `spec`: the sweep file's schema and one-line errors;
- `grid`: the cross product of the grid to cells, each a resolved recipe with a stable id;
- `pipeline`: the adapter to the `tinyharden run` pipeline (train, attack, export, report);
- `cell`: one cell in a fresh process, its cell.json record;
- `local`, `ray_engine`: the engines (Ray is imported only by the latter);
- `runner`: skip finished cells, dispatch the rest, rewrite sweep.json after each;
- `aggregate`, `render`, `plot`: mean +/- std and 95% intervals per grid point, table/md/html, plot, gates.

Importing this package imports neither TensorFlow nor Ray.
"""
