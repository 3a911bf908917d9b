"""The contract every attack follows, and the registry the CLI and recipes use.

Like foolbox, one small class per attack: the constructor takes the attack's budget as
typed keyword-only arguments (so every budget is visible, settable and recorded), and
`run(target, x, y, eps=..., norm=..., seed=...)` returns candidate adversarial examples.
Attacks never decide whether they succeeded: `tinyharden.attacks.evaluation` re-checks
every example (inside the eps ball, inside [0, 1]) and re-predicts it.

All inputs and eps are in [0, 1] data units (see `tinyharden.attacks.target`).
"""
from __future__ import annotations

import difflib
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from tinyharden.errors import UserError
from tinyharden.registry import ATTACKS
from tinyharden.recipe import parse_number

WHITE_BOX = "white-box"
BLACK_BOX = "black-box"
TRANSFER = "transfer"


@dataclass
class AttackOutput:
    """What an attack hands back: one candidate per input, plus accounting."""

    x_adv: np.ndarray
    queries: np.ndarray | None = None  # per-sample model queries, black-box attacks only
    info: dict[str, Any] = field(default_factory=dict)


class Attack:
    """Base class. Subclasses set the class attributes and implement `run`.

    kind: white-box (needs gradients), black-box (needs only `predict`) or transfer.
    minimum_norm: True if the attack looks for the smallest perturbation and ignores eps
        (CW, boundary, ZOO); it runs once and is scored at every eps of the sweep.
    norms: the norms the attack supports; a minimum-norm attack lists the one it minimizes.
    library: "tinyharden", "foolbox" or "art"; recorded with the version.
    precision_capable: True if the attack computes through `target.logits` and may be handed
        a bfloat16 twin of the target (`attacks.precision`); its examples are scored in float32.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    minimum_norm: ClassVar[bool] = False
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")
    library: ClassVar[str] = "tinyharden"
    eot_capable: ClassVar[bool] = False
    precision_capable: ClassVar[bool] = False

    def params(self) -> dict[str, Any]:
        """The attack's budget, as passed or defaulted; recorded in attack.json."""
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self" and not k.startswith("_")}

    def implementation(self) -> dict[str, Any]:
        from importlib import metadata

        dist = {"foolbox": "foolbox", "art": "adversarial-robustness-toolbox", "tinyharden": "tinyharden"}[self.library]
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            from tinyharden import __version__ as version
        return {"library": self.library, "version": version, "algorithm": self.algorithm()}

    def algorithm(self) -> str:
        return type(self).__name__

    def run(self, target, x: np.ndarray, y: np.ndarray, *, eps: float, norm: str, seed: int,
            eot: int = 1, batch_size: int = 256) -> AttackOutput:  # pragma: no cover - abstract
        raise NotImplementedError


# The attack names live in tinyharden/registry.py (ATTACKS), resolved lazily so listing
# attacks imports no TensorFlow.
REGISTRY = ATTACKS


def attack_class(name: str) -> type[Attack]:
    return ATTACKS.get(name)


def _coerce(name: str, key: str, annotation: Any, value: Any) -> Any:
    """Validate one parameter against its annotation; fractions are accepted for floats."""
    from pydantic import BeforeValidator, TypeAdapter, ValidationError
    from typing import Annotated

    numeric = annotation is float or float in typing.get_args(annotation)

    def fractions(v):
        return parse_number(v) if numeric and isinstance(v, str) and "/" in v else v

    try:
        return TypeAdapter(Annotated[annotation, BeforeValidator(fractions)]).validate_python(value)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
        raise UserError(f"attack parameter {name}.{key}={value!r}: {msg}") from None


def make_attack(name: str, params: dict[str, Any] | None = None, **context: Any) -> Attack:
    """Build attack `name` with budget overrides `params`; unknown keys are a UserError."""
    cls = attack_class(name)
    sig = inspect.signature(cls.__init__)
    hints = typing.get_type_hints(cls.__init__)
    public = [k for k in sig.parameters if k != "self" and not k.startswith("_")]
    kwargs: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if key not in public:
            close = difflib.get_close_matches(key, public, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; its parameters are: {', '.join(public)}"
            raise UserError(f"attack '{name}' has no parameter '{key}'{hint}")
        kwargs[key] = _coerce(name, key, hints.get(key, Any), value)
    for key, value in context.items():  # objects the CLI supplies, e.g. the transfer source
        if key in sig.parameters:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise UserError(f"attack '{name}': {exc}") from None


def batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))
