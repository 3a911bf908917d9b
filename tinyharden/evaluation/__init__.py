"""Scoring a model on a dataset split: accuracy with its Wilson interval, per class, confusion matrix.

`tinyharden evaluate` is a thin CLI over `run_evaluate`; `score_predictions` is the
NumPy core any caller can use. Importing this package does not import TensorFlow.
"""
from tinyharden.evaluation.scoring import score_predictions

__all__ = ["score_predictions"]
