"""The random stream of training: stochastic-quantizer sampling and Jacobian projections.

    >>> from tinyharden import rng
    >>> rng.reset(seed=0); a = rng.stream().uniform([2]); rng.reset(seed=0)
    >>> bool((a == rng.stream().uniform([2])).numpy().all())
    True

Stateful `tf.random.*` ops restart their stream whenever a process starts, so a resumed
run would redraw the samples of its first epochs. Everything that samples while
training draws from this one `tf.random.Generator` instead; its state is a variable the
trainer saves in every checkpoint, so a resumed run continues the stream exactly where
the checkpointed epoch left it, and equals an uninterrupted run bit for bit.
"""
from __future__ import annotations

from tinyharden._tf import tf

# Created at import, outside any tf.function: a traced step may then use it freely.
_STREAM = tf.random.Generator.from_seed(0)


def stream() -> tf.random.Generator:
    """The process-wide training generator (checkpointed by the trainer)."""
    return _STREAM


def reset(*, seed: int) -> None:
    """Restart the stream from `seed` (a new run; a resume restores the checkpointed state instead)."""
    _STREAM.reset_from_seed(int(seed))
