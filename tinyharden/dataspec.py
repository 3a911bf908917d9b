"""The recipe's `data:` section: one spec class per registered dataset, `dataset` the discriminator.

    DataSpec(dataset="speech_commands", space="waveform")   # -> a SpeechCommandsSpec
    spec_class("cifar10")                                   # -> data.cifar10.Cifar10Spec (imported now)

The keys every dataset takes live here; a dataset's own keys live on its subclass beside its
loader, named by its registry entry (`spec=`), so adding a dataset touches its module and one
registration line. `Recipe.data` validates a mapping with the class its `dataset` names.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SerializeAsAny, WrapValidator

from tinyharden.registry import DATASETS


class Section(BaseModel):
    """A recipe section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _known_dataset(value: str) -> str:
    if value not in DATASETS:
        names = [f"'{n}'" for n in DATASETS.names()]
        raise ValueError(f"Input should be {', '.join(names[:-1])} or {names[-1]}{DATASETS.hint(value)}")
    return value


DEFAULT_DATASET = "digits"


class DataSpec(Section):
    """The `data:` section, as a union over the registered datasets with `dataset` the discriminator.

        DataSpec(dataset="speech_commands", space="waveform")   # -> a SpeechCommandsSpec

    This class holds the keys every dataset takes; each dataset's own keys live on its subclass,
    beside its loader, named by its registry entry (`spec=`). Constructing `DataSpec(dataset=...)` and
    validating a recipe's `data:` mapping both pick that subclass, so `space: waveform` on a
    cifar10 recipe is an unknown key that names the dataset it belongs to.
    """

    dataset: Annotated[str, AfterValidator(_known_dataset)] = DEFAULT_DATASET
    path: str | None = Field(None, description="folder holding the dataset; default: $TINYHARDEN_DATA/<dataset> or ../shared/data/<dataset>")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    limit_train: int | None = Field(None, gt=0, le=10_000_000)
    limit_test: int | None = Field(None, gt=0, le=10_000_000)

    def __new__(cls, *args: Any, **kwargs: Any) -> "DataSpec":
        # Only a call naming the dataset dispatches: copy, deepcopy and pickle call
        # `cls.__new__(cls)` bare and must get the class they asked for.
        if cls is DataSpec and "dataset" in kwargs:
            cls = spec_class(kwargs["dataset"])
        return super().__new__(cls)

    def with_folder(self, path: str | Path) -> "DataSpec":
        """The same spec reading the data in `path` instead (a folder given for scoring is the data itself)."""
        return self.model_copy(update={"path": str(path)})

    @classmethod
    def specialize(cls, raw: Any) -> type["DataSpec"]:
        """The class that validates the mapping `raw` (by its `dataset`)."""
        return spec_class(raw.get("dataset", DEFAULT_DATASET)) if isinstance(raw, dict) else cls


class KFoldSpec(DataSpec):
    """Keys of datasets with a k-fold split (the registry entry's `folds=` says how it is drawn)."""

    fold: int | None = Field(None, ge=0, le=100, description="k-fold cross-validation: which fold is the test split")
    folds: int = Field(5, ge=2, le=100)


def default_data_spec() -> DataSpec:
    """The `data:` section of a recipe that has none."""
    return DataSpec(dataset=DEFAULT_DATASET)


def spec_class(dataset: Any) -> type[DataSpec]:
    """The DataSpec subclass registered for `dataset`; the common keys for an unknown or spec-less one."""
    if not isinstance(dataset, str) or dataset not in DATASETS:
        return DataSpec
    return DATASETS.attribute(dataset, "spec", DataSpec)


def owners(key: str) -> list[str]:
    """The registered datasets whose `data:` section takes `key`."""
    return [n for n in DATASETS.names() if key in spec_class(n).model_fields]


# Keys of the single flat DataSpec that every resolved recipe.yaml held before the split
# (run folders, shipped pretrained models), with their values there. Such a file carries the
# other datasets' keys at these defaults; they are dropped, anything else stays an error.
_FLAT_DEFAULTS = {"test_path": None, "fold": None, "folds": 5, "space": "features", "shape": [8, 8, 1],
                  "num_classes": 10, "samples": 512}


def _data_section(value: Any, handler: Any) -> DataSpec:
    if not isinstance(value, dict):
        return handler(value)
    cls = DataSpec.specialize(value)
    if cls is DataSpec and value.get("dataset", DEFAULT_DATASET) not in DATASETS:
        return handler(value)  # the base class words the unknown-dataset error (choices, did-you-mean)
    if _FLAT_DEFAULTS.keys() <= value.keys():
        value = {k: v for k, v in value.items()
                 if k in cls.model_fields or k not in _FLAT_DEFAULTS or v != _FLAT_DEFAULTS[k]}
    return cls.model_validate(value)


DataSection = Annotated[SerializeAsAny[DataSpec], WrapValidator(_data_section)]
