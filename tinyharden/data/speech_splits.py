"""Speaker-disjoint splits of a Speech Commands pool: random, k-fold, or the archive's own lists.

    >>> from tinyharden.data.speech_splits import speaker_splits
    >>> tr, va, te = speaker_splits(["a", "a", "b", "c", "d"], seed=0, val_fraction=0.2)
    >>> sorted(set(tr) | set(va) | set(te)) == [0, 1, 2, 3, 4]
    True

Importing this module does not import TensorFlow.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tinyharden.errors import UserError

TEST_FRACTION = 0.1  # share of clips in the test split when data.fold is unset (as the archive's own split)


def _take(order: np.ndarray, counts: np.ndarray, target: float) -> int:
    """How many speakers from the front of `order` bring the clip count closest to `target`."""
    cum = np.concatenate([[0], np.cumsum(counts[order])])
    return int(np.argmin(np.abs(cum - target)))


def speaker_splits(speakers: Sequence[str], seed: int, val_fraction: float, *, fold: int | None = None,
                   folds: int = 5, test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) clip indices; no speaker is in two of them.

    fold None: about `test_fraction` of the clips go to test. fold k in 0..folds-1: the
    speakers are dealt into `folds` folds of about equal clip count (from the seed alone,
    so every k of one seed partitions the speakers) and fold k is the test split. Then
    about `val_fraction` of the remaining clips go to validation. Fractions are of clips,
    met as closely as whole speakers allow.
    """
    uniq, inverse, counts = np.unique(np.asarray(speakers, dtype=str), return_inverse=True, return_counts=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    if fold is None:
        k = _take(order, counts, test_fraction * len(inverse))
        test_spk, rest = order[:k], order[k:]
    else:
        if not 0 <= fold < folds:
            raise UserError(f"data.fold is {fold} but data.folds is {folds}; pick a fold in 0..{folds - 1}")
        if len(uniq) < folds:
            raise UserError(f"only {len(uniq)} speakers for {folds} folds; lower data.folds")
        # Largest speakers first, each to the lightest fold: folds end up near equal in clips.
        fold_of, load = np.empty(len(uniq), np.int64), np.zeros(folds, np.int64)
        for s in order[np.argsort(-counts[order], kind="stable")]:
            fold_of[s] = int(np.argmin(load))
            load[fold_of[s]] += counts[s]
        test_spk, rest = order[fold_of[order] == fold], order[fold_of[order] != fold]
    k = _take(rest, counts, val_fraction * counts[rest].sum())
    val_spk, train_spk = rest[:k], rest[k:]

    def idx(spk: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.isin(inverse, spk))

    return idx(train_spk), idx(val_spk), idx(test_spk)


def official_splits(files: np.ndarray, speakers: np.ndarray, lists: dict[str, set[str]], seed: int,
                    val_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices from the archive's validation/testing lists.

    Listed clips go where their list says and every other clip to train, as the archive's
    own `which_set` does; the generated `_silence_` clips (named after the noise, so in no
    list) are dealt by noise stretch with the usual fractions.
    """
    files = np.asarray(files, dtype=str)
    in_val, in_test = np.isin(files, sorted(lists["val"])), np.isin(files, sorted(lists["test"]))
    generated = np.char.find(files, "@") >= 0  # `_background_noise_/<name>.wav@<start>`
    split = np.where(in_test, 2, np.where(in_val, 1, 0))
    gen = np.flatnonzero(generated)
    if len(gen):
        g_tr, g_va, g_te = speaker_splits(np.asarray(speakers)[gen], seed, val_fraction)
        split[gen[g_va]], split[gen[g_te]], split[gen[g_tr]] = 1, 2, 0
    return tuple(np.flatnonzero(split == s) for s in (0, 1, 2))  # type: ignore[return-value]
