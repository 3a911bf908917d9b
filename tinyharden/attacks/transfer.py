"""Transfer: PGD crafted on a source model (e.g. the float twin), replayed on the target.

The target is never queried while crafting, so this works on any Target, `.tflite`
included. A transfer attack that beats the white-box ones on the target itself is a
classic sign of gradient masking (see `masking.py`).
"""
from __future__ import annotations

from typing import Any, Literal

from tinyharden.attacks.base import TRANSFER, Attack, AttackOutput
from tinyharden.attacks.pgd import PGD
from tinyharden.errors import UserError


class Transfer(Attack):
    """PGD on `source`, evaluated on the target."""

    name = "transfer"
    kind = TRANSFER

    def __init__(self, *, source: str | None = None, steps: int = 20, rel_step: float = 0.25,
                 random_start: bool = True, restarts: int = 1, loss: Literal["ce", "margin"] = "ce",
                 _source_target: Any = None):
        self.source = source
        self.steps = steps
        self.rel_step = rel_step
        self.random_start = random_start
        self.restarts = restarts
        self.loss = loss
        self._pgd = PGD(steps=steps, rel_step=rel_step, random_start=random_start, restarts=restarts, loss=loss)
        self._source_target = _source_target

    def algorithm(self) -> str:
        return "PGD on the source model (tinyharden in-graph), replayed on the target"

    def run(self, target, x, y, *, eps, norm, seed, eot=1, batch_size=256) -> AttackOutput:
        src = self._source_target
        if src is None:
            raise UserError("attack 'transfer' needs a source model: give one (e.g. the float twin's run folder)",
                            option="source")
        if tuple(src.input_shape) != tuple(target.input_shape) or src.num_classes != target.num_classes:
            raise UserError(
                f"transfer source '{src.name}' takes {src.input_shape} -> {src.num_classes} classes but the target takes "
                f"{target.input_shape} -> {target.num_classes}; pass a source trained on the same data")
        out = self._pgd.run(src, x, y, eps=eps, norm=norm, seed=seed, eot=1, batch_size=batch_size)
        out.info["source"] = src.name
        return out
