"""The command-line interface: thin Typer commands over the core modules.

Modules here import only typer/rich at top level; each command imports the core (and so
TensorFlow) inside its body, which keeps `tinyharden --help` fast.
"""
