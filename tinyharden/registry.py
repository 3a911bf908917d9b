"""Every name a user types, in one place: datasets, models, quantizer presets and attacks.

    from tinyharden.registry import DATASETS
    DATASETS.check("digts")          # UserError: unknown dataset 'digts' (...); did you mean 'digits'?
    load = DATASETS.get("digits")    # imported only now: listing names imports no TensorFlow

Recipe validation, CLI help and choices, `doctor` and error messages read these, so a new
dataset, model, preset or attack is its own module plus one registration line below.
An entry is "module:attribute" (resolved lazily) or the object itself.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any

from tinyharden.errors import UserError


@dataclass
class Entry:
    target: Any  # "module:attribute" or the object
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    """name -> lazily imported object, with the list of choices and did-you-mean."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: Any, **meta: Any) -> None:
        self._entries[name] = Entry(target, meta)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def choices(self) -> str:
        return ", ".join(self._entries)

    def meta(self, name: str) -> dict[str, Any]:
        return self._entries[self.check(name)].meta

    def attribute(self, name: str, key: str, default: Any = None) -> Any:
        """The object a "module:attribute" meta value names, imported now (e.g. a dataset's `spec` class)."""
        meta = self.meta(name)
        if key not in meta:
            return default
        meta[key] = _resolve(meta[key])
        return meta[key]

    def suggest(self, name: str) -> str | None:
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        return close[0] if close else None

    def hint(self, name: str) -> str:
        """"; did you mean 'x'?" or "" for an unknown `name`."""
        close = self.suggest(name)
        return f"; did you mean '{close}'?" if close else ""

    def unknown(self, name: str) -> str:
        return f"unknown {self.kind} '{name}' (choose from {self.choices()}){self.hint(name)}"

    def check(self, name: str) -> str:
        """`name` if registered, else a one-line UserError with the choices and did-you-mean."""
        if name not in self._entries:
            raise UserError(self.unknown(name))
        return name

    def get(self, name: str) -> Any:
        entry = self._entries[self.check(name)]
        entry.target = _resolve(entry.target)
        return entry.target


def _resolve(target: Any) -> Any:
    if isinstance(target, str) and ":" in target:
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)
    return target


# ----------------------------------------------------------------------------- registrations
# folder: where `doctor` looks (a data folder name) or what it prints instead.
# spec: the recipe's `data:` section for this dataset (a recipe.DataSpec subclass beside the loader);
# without one the dataset takes the common keys only. augment: the training-augmentation hook
# (data.augment.Augmentation factory); without one any train.augment setting is refused.

DATASETS = Registry("dataset")
_IMAGES = "tinyharden.data.augment:image_augmentation"
DATASETS.register("cifar10", "tinyharden.data.cifar10:load_cifar10", folder="cifar10",
                  spec="tinyharden.data.cifar10:Cifar10Spec", augment=_IMAGES)
DATASETS.register("speech_commands", "tinyharden.data.speech_commands:load_speech_commands", folder="speech_commands",
                  spaces=("features", "waveform"), folds="by speaker",
                  spec="tinyharden.data.speech_commands:SpeechCommandsSpec",
                  augment="tinyharden.data.speech_augment:speech_augmentation")
DATASETS.register("digits", "tinyharden.data.digits:load_digits", embedded="embedded (scikit-learn)",
                  folds="stratified", spec="tinyharden.data.digits:DigitsSpec", augment=_IMAGES)
DATASETS.register("synthetic", "tinyharden.data.synthetic:load_synthetic", embedded="generated",
                  spec="tinyharden.data.synthetic:SyntheticSpec", augment=_IMAGES)

MODELS = Registry("model")
MODELS.register("resnet8", "tinyharden.models.resnet8:resnet8", input_shape=(32, 32, 3), classes=10)
MODELS.register("dscnn", "tinyharden.models.dscnn:dscnn", input_shape=(49, 10, 1), classes=12)
MODELS.register("stq_cnn", "tinyharden.models.stq_cnn:stq_cnn", input_shape=(32, 32, 3), classes=10)
MODELS.register("cnn", "tinyharden.models.small:cnn", input_shape=(8, 8, 1), classes=10)
MODELS.register("mlp", "tinyharden.models.small:mlp", input_shape=(8, 8, 1), classes=10)

PRESETS = Registry("preset")
for _name in ("float", "stq", "ternary", "binary", "stochastic_binary", "int8", "int4"):
    PRESETS.register(_name, f"tinyharden.quantization.presets:{_name.upper()}")

ATTACKS = Registry("attack")
ATTACKS.register("fgsm", "tinyharden.attacks.pgd:FGSM")
ATTACKS.register("pgd", "tinyharden.attacks.pgd:PGD")
ATTACKS.register("cw", "tinyharden.attacks.cw:CarliniWagnerL2")
ATTACKS.register("apgd", "tinyharden.attacks.apgd:APGD")
ATTACKS.register("apgd-art", "tinyharden.attacks.apgd:ARTAPGD")
ATTACKS.register("square", "tinyharden.attacks.square_graph:SquareGraph")
ATTACKS.register("square-art", "tinyharden.attacks.square:Square")
ATTACKS.register("boundary", "tinyharden.attacks.boundary:Boundary")
ATTACKS.register("zoo", "tinyharden.attacks.zoo:ZOO")
ATTACKS.register("transfer", "tinyharden.attacks.transfer:Transfer")
ATTACKS.register("autoattack", "tinyharden.attacks.autoattack:AutoAttack")
ATTACKS.register("autoattack-rand", "tinyharden.attacks.autoattack:AutoAttackRand")
