"""Google Speech Commands as 12-class keyword spotting (the MLPerf Tiny KWS task).

Labels: 0 down, 1 go, 2 left, 3 no, 4 off, 5 on, 6 right, 7 stop, 8 up, 9 yes,
10 _silence_, 11 _unknown_ (every other word).

Sources, in the data folder (data.path, else $TINYHARDEN_DATA/speech_commands or
../shared/data/speech_commands), all read together:
1. npz files: every `speech_commands*.npz` holding `x` (N, samples) int16 at 16 kHz,
   `y` (N,) labels in the order above and `filenames` `<word>/<speaker>_nohash_<n>.wav`;
   background noise from `*background_noise*.npz` (1-D int16 recordings);
2. the archive's layout: `<word>/<speaker>_nohash_<n>.wav` or `.flac` (16 kHz mono, read
   by soundfile), `_background_noise_/*.wav`; `_silence_/` and `_unknown_/` are honoured.
Every clip is named `<word>/<stem>.wav` (the archive lists' names, whatever the container),
padded/trimmed to 1 s, de-duplicated by that name and sorted by it. `_silence_` clips are
cut from the folder's background noise (none without it): non-overlapping 1 s windows, as
many as SILENCE_FRACTION of the other clips.

Splits never share a speaker (the hash before `_nohash_`). data.test_path: that folder's
clips are the whole test split (its speakers are dropped from train and val). Else, with
data.fold unset, the archive's `validation_list.txt` / `testing_list.txt` when the folder
has them, otherwise TEST_FRACTION of the clips by speaker go to test; with data.fold = k,
speaker fold k of data.folds is the test split (k-fold cross-validation). data.val_fraction
of the rest is validation. All deterministic given the seed.

data.space = "features": x is [N, 49, 10, 1] float32 MFCCs (frontend.mfcc), clipped to
frontend.FEATURE_RANGE, kind "audio_features". data.space = "waveform": x is [N, 16000]
float32, each clip scaled so its largest |sample| is 1 (the front end peak-normalizes
anyway, so no feature changes; noise volumes and waveform eps are relative to the peak,
as in MLPerf's augmentation), input_range (-1, 1), kind "audio_waveform", and
meta["background_noise"] holds the noise recordings for `augment_waveforms`.

Decoded clips and features are cached as .npy under $TINYHARDEN_CACHE (default
~/.cache/tinyharden). Importing this module does not import TensorFlow.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np
from pydantic import Field

from tinyharden.data import audio_files as af
from tinyharden.data import frontend
from tinyharden.data.base import Dataset, find_data_dir
from tinyharden.data.speech_splits import TEST_FRACTION, official_splits, speaker_splits
from tinyharden.errors import UserError
from tinyharden.dataspec import KFoldSpec

__all__ = ["LABELS", "TEST_FRACTION", "augment_waveforms", "load_background_noise", "load_clips",
           "load_speech_commands", "speaker_of", "speaker_splits", "split_pool", "train_waveforms"]

LABELS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_"]
KEYWORDS = LABELS[:10]
SILENCE, UNKNOWN = 10, 11
NOISE_DIR = af.NOISE_DIR
SAMPLE_RATE = frontend.SAMPLE_RATE
CLIP_SAMPLES = frontend.CLIP_SAMPLES
SILENCE_FRACTION = 0.1  # _silence_ clips added per other clip (the Speech Commands training default)
_NOISE_GROUP_SECONDS = 10  # silence windows of one recording this close share a split
_SPEAKER = re.compile(r"([^/_]+)_nohash_")
_CACHE_FORMAT = "1"  # bump when the cached arrays change meaning


class SpeechCommandsSpec(KFoldSpec):
    """`data:` for Speech Commands: the common keys, speaker folds, a test folder and the input space."""

    dataset: Literal["speech_commands"] = "speech_commands"
    test_path: str | None = Field(None, description="a second folder whose clips are the whole test split")
    space: Literal["features", "waveform"] = "features"

    def with_folder(self, path: str | Path) -> "SpeechCommandsSpec":
        """`path` is the whole data: no second test folder."""
        return self.model_copy(update={"path": str(path), "test_path": None})


# --------------------------------------------------------------------------- helpers

def speaker_of(filename: str) -> str:
    """The speaker id of `<word>/<speaker>_nohash_<n>.wav`; files without one are their own group."""
    m = _SPEAKER.search(filename)
    return m.group(1) if m else filename


def label_of_word(word: str) -> int:
    """12-class label of an archive folder name."""
    if word in KEYWORDS:
        return KEYWORDS.index(word)
    return SILENCE if word == "_silence_" else UNKNOWN


def _fit(x: np.ndarray) -> np.ndarray:
    """Pad with zeros / trim the last axis to 1 s."""
    x = x[..., :CLIP_SAMPLES]
    if x.shape[-1] < CLIP_SAMPLES:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, CLIP_SAMPLES - x.shape[-1])])
    return x


# --------------------------------------------------------------------------- reading

def load_background_noise(path: str | None = None) -> dict[str, np.ndarray]:
    """The background-noise recordings of the data folder: name -> 1-D float32 in [-1, 1] (int16 / 32768).

    Empty when the folder has none. Read from `*background_noise*.npz` and `_background_noise_/*.wav|.flac`.
    """
    folder = _data_folder(path)
    return {k: v.astype(np.float32) / 32768.0 for k, v in af.read_noise(folder).items()}


def _silence_clips(noise: Mapping[str, np.ndarray], count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """`count` non-overlapping 1 s windows of the noise, chosen deterministically."""
    windows = [(name, start) for name in sorted(noise)
               for start in range(0, len(noise[name]) - CLIP_SAMPLES + 1, CLIP_SAMPLES)]
    if not windows or count <= 0:
        return np.zeros((0, CLIP_SAMPLES), np.int16), np.zeros(0, np.int64), np.zeros(0, str), []
    # A fixed seed: the silence clips are part of the data, not of a run.
    pick = sorted(np.random.default_rng(0).permutation(len(windows))[:count])
    chosen = [windows[i] for i in pick]
    x = np.stack([noise[name][start:start + CLIP_SAMPLES] for name, start in chosen])
    files = np.array([f"{NOISE_DIR}/{name}.wav@{start}" for name, start in chosen])
    groups = [f"{NOISE_DIR}/{name}#{start // (_NOISE_GROUP_SECONDS * SAMPLE_RATE)}" for name, start in chosen]
    return x, np.full(len(chosen), SILENCE, np.int64), files, groups


def _read_sources(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every clip of every source (npz files, then .wav/.flac folders), 1 s each, unsorted."""
    npz, audio = af.npz_clip_files(folder), af.audio_clip_files(folder)
    if not npz and not audio:
        raise UserError(
            f"no Speech Commands clips in '{folder}'; expected speech_commands*.npz files (x, y, filenames) "
            "or the archive's <word>/<speaker>_nohash_<n>.wav (or .flac) folders")
    parts = [af.read_npz_clips(p, LABELS) for p in npz]
    xs, ys, names = [_fit(p[0]) for p in parts], [p[1] for p in parts], [p[2] for p in parts]
    if audio:
        x = np.empty((len(audio), CLIP_SAMPLES), np.int16)  # filled in place: the full archive is ~3 GB
        for i, p in enumerate(audio):
            x[i] = _fit(af.read_audio(p))
        xs.append(x)
        ys.append(np.array([label_of_word(p.parent.name) for p in audio], np.int64))
        names.append(np.array([af.canonical_name(f"{p.parent.name}/{p.name}") for p in audio], dtype=str))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(names).astype(str)


def _read_pool(folder: Path) -> dict[str, np.ndarray]:
    """All clips of the folder, one per name, plus generated _silence_ clips, sorted by name."""
    x, y, files = _read_sources(folder)
    files, first = np.unique(files, return_index=True)  # sorted; a clip found in two sources counts once
    x, y = x[first], y[first]
    groups = [speaker_of(f) for f in files]
    want = int(round(SILENCE_FRACTION * np.sum(y != SILENCE))) - int(np.sum(y == SILENCE))
    sx, sy, sfiles, sgroups = _silence_clips(af.read_noise(folder), want)
    files = np.concatenate([files, sfiles]).astype(str)
    order = np.argsort(files, kind="stable")
    return {"wav": np.concatenate([x, sx])[order], "y": np.concatenate([y, sy])[order],
            "files": files[order], "speakers": np.array(groups + sgroups, dtype=str)[order]}


# --------------------------------------------------------------------------- cache

def _cache_dir(folder: Path) -> Path:
    files = af.npz_clip_files(folder) + af.audio_clip_files(folder) + af.noise_files(folder)
    stats = [(str(p.relative_to(folder)), p.stat().st_size, int(p.stat().st_mtime)) for p in files]
    key = repr((_CACHE_FORMAT, frontend.FRONTEND_VERSION, SILENCE_FRACTION, str(folder.resolve()), stats))
    root = Path(os.environ.get("TINYHARDEN_CACHE", Path.home() / ".cache" / "tinyharden"))
    return root / "speech_commands" / hashlib.sha1(key.encode()).hexdigest()[:16]


def _save(cache: Path, name: str, a: np.ndarray) -> None:
    try:
        from tinyharden.workspace import atomic_path

        cache.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache / f"{name}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, a, allow_pickle=False)
    except OSError:
        pass  # caching is an optimization; a read-only home still works


def _load(cache: Path, names: Sequence[str]) -> dict[str, np.ndarray] | None:
    try:
        # Memory-mapped: the caller copies out only the rows it keeps.
        return {n: np.load(cache / f"{n}.npy", mmap_mode="r", allow_pickle=False) for n in names}
    except (OSError, ValueError):
        return None  # missing or damaged: rebuilt by the caller


def load_clips(path: str | None = None, *, features: bool = False) -> dict[str, np.ndarray]:
    """The whole pool, unsplit: `files`, `speakers` (str), `y` (int64) and either `wav`
    ([N, 16000] int16) or, with features=True, `features` ([N, 49, 10, 1] float32, clipped). Cached."""
    folder = _data_folder(path)
    cache = _cache_dir(folder)
    data_key = "features" if features else "wav"
    pool = _load(cache, ["files", "speakers", "y", data_key])
    if pool is not None:
        return pool
    pool = _load(cache, ["files", "speakers", "y", "wav"])
    if pool is None:
        pool = _read_pool(folder)
        for name in ("files", "speakers", "y", "wav"):
            _save(cache, name, pool[name])
    if features:
        pool["features"] = frontend.mfcc_numpy(pool.pop("wav"))
        _save(cache, "features", pool["features"])
    return pool


def _data_folder(path: str | None) -> Path:
    folder = find_data_dir("speech_commands", path)
    if folder is None:
        raise UserError("Speech Commands not found; set data.path (or $TINYHARDEN_DATA) to a folder holding "
                        "speech_commands/ with speech_commands*.npz files or the archive's wav folders")
    if not folder.is_dir():
        raise UserError(f"'{folder}' is not a folder; point data.path at the folder holding the Speech Commands files")
    return folder


# --------------------------------------------------------------------------- augmentation

def augment_waveforms(wavs, rng: np.random.Generator | int | None = None, *, noise_prob: float = 0.8,
                      noise_volume: float = 0.1, shift_ms: float = 100.0,
                      noise_clips: Mapping[str, np.ndarray] | Sequence[np.ndarray] = ()) -> np.ndarray:
    """MLPerf / Speech Commands training augmentation of a waveform batch.

    wavs: [N, samples] (or [N, samples, 1]) float in [-1, 1], numpy or an eager tf.Tensor.
    Each clip is shifted by a random whole number of samples in [-shift_ms, +shift_ms]
    milliseconds (gaps filled with zeros); then, with probability `noise_prob`, a random
    1 s stretch of a random `noise_clips` recording (1-D, float in [-1, 1] or int16),
    scaled by a volume drawn uniformly from [0, noise_volume], is added and the sum is
    clipped to [-1, 1]. Defaults are MLPerf's (0.8, 0.1, 100 ms). Returns float32 numpy,
    same shape; `rng` (a Generator or a seed) makes it reproducible.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    x = np.array(wavs, dtype=np.float32)  # a copy: the caller's batch is left alone
    shape = x.shape
    x = x.reshape(shape[0], -1) if x.ndim == 3 else x
    n, length = x.shape
    max_shift = int(round(shift_ms * SAMPLE_RATE / 1000.0))
    if max_shift > 0:
        for i, s in enumerate(rng.integers(-max_shift, max_shift + 1, size=n)):
            if s > 0:
                x[i, s:], x[i, :s] = x[i, :length - s].copy(), 0.0
            elif s < 0:
                x[i, :length + s], x[i, length + s:] = x[i, -s:].copy(), 0.0
    clips = list(noise_clips.values()) if isinstance(noise_clips, Mapping) else list(noise_clips)
    clips = [np.asarray(c, np.float32) / (32768.0 if np.asarray(c).dtype == np.int16 else 1.0)
             for c in clips if len(c) >= length]
    if clips and noise_prob > 0 and noise_volume > 0:
        for i in np.flatnonzero(rng.random(n) < noise_prob):
            c = clips[int(rng.integers(len(clips)))]
            start = int(rng.integers(0, len(c) - length + 1))
            x[i] += rng.uniform(0.0, noise_volume) * c[start:start + length]
        np.clip(x, -1.0, 1.0, out=x)
    return x.reshape(shape)


# --------------------------------------------------------------------------- dataset

_FIELDS = ("y", "files", "speakers")


def _test_path_parts(spec, seed: int, pool, test_pool, lists) -> dict[str, tuple[dict, np.ndarray]]:
    """data.test_path: that folder is the test split; train/val come from data.path without
    its speakers (and without the clips of the archive's testing list, if it has one)."""
    speakers, files = np.asarray(pool["speakers"]), np.asarray(pool["files"])
    keep = ~np.isin(speakers, np.unique(test_pool["speakers"]))
    if lists:
        keep &= ~np.isin(files, sorted(lists["test"]))
    keep = np.flatnonzero(keep)
    if lists:
        tr, va, _ = official_splits(files[keep], speakers[keep], {"val": lists["val"], "test": set()}, seed,
                                    spec.val_fraction)
    else:
        tr, va, _ = speaker_splits(speakers[keep], seed, spec.val_fraction, test_fraction=0.0)
    return {"train": (pool, keep[tr]), "val": (pool, keep[va]), "test": (test_pool, np.arange(len(test_pool["y"])))}


def split_pool(spec, seed: int, *, features: bool) -> dict[str, dict[str, np.ndarray]]:
    """The clips of each split of a recipe's `data:` section:
    {"train" | "val" | "test": {"features" or "wav", "y", "files", "speakers"}}.

    data.test_path set: that folder's clips are the test split. Else, with data.fold unset
    and the archive's validation_list.txt / testing_list.txt in data.path, the official
    split. Else a speaker-disjoint random split or speaker fold data.fold.
    """
    key = "features" if features else "wav"
    pool = load_clips(spec.path, features=features)
    lists = None if spec.fold is not None else af.official_lists(_data_folder(spec.path))
    if getattr(spec, "test_path", None):
        parts = _test_path_parts(spec, seed, pool, load_clips(spec.test_path, features=features), lists)
    else:
        if lists:
            tr, va, te = official_splits(pool["files"], pool["speakers"], lists, seed, spec.val_fraction)
        else:
            tr, va, te = speaker_splits(pool["speakers"], seed, spec.val_fraction, fold=spec.fold, folds=spec.folds)
        parts = {"train": (pool, tr), "val": (pool, va), "test": (pool, te)}
    return {name: {k: np.asarray(p[k][idx]) for k in (key, *_FIELDS)} for name, (p, idx) in parts.items()}


def peak_normalize(wav: np.ndarray) -> np.ndarray:
    x = wav.astype(np.float32)
    peak = np.abs(x).max(axis=1, keepdims=True)
    return x / np.maximum(peak, 1.0)  # digital silence stays zeros


def train_waveforms(spec, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The train split's clips as float32 in [-1, 1], in the order of `load_speech_commands`'
    x_train, and the background-noise recordings: what audio augmentation needs."""
    train = split_pool(spec, seed, features=False)["train"]
    return train["wav"].astype(np.float32) / 32768.0, load_background_noise(spec.path)


def load_speech_commands(spec, seed: int) -> Dataset:
    """The dataset of a recipe's `data:` section (path, test_path, val_fraction, fold, folds, space)."""
    waveform = spec.space == "waveform"
    parts = split_pool(spec, seed, features=not waveform)
    if waveform:
        xs = {k: peak_normalize(p["wav"]) for k, p in parts.items()}
        input_range, kind = (-1.0, 1.0), "audio_waveform"
    else:
        xs = {k: p["features"] for k, p in parts.items()}
        input_range, kind = (float(frontend.FEATURE_RANGE[0]), float(frontend.FEATURE_RANGE[1])), "audio_features"
    meta = {
        "space": spec.space, "sample_rate": SAMPLE_RATE, "fold": -1 if spec.fold is None else spec.fold,
        "folds": spec.folds, "silence_clips": int(sum(np.char.find(p["files"], "@").__ge__(0).sum() for p in parts.values())),
        **{f"speakers_{k}": sorted(set(p["speakers"].tolist())) for k, p in parts.items()},
        "files_test": parts["test"]["files"].tolist(),
    }
    if waveform:
        meta["background_noise"] = load_background_noise(spec.path)
    else:  # the reference model's int8 input quantization, for export and int8 evaluation
        meta.update(input_scale=frontend.INPUT_SCALE, input_zero_point=frontend.INPUT_ZERO_POINT)
    ys = {k: p["y"].astype(np.int64) for k, p in parts.items()}
    return Dataset("speech_commands", xs["train"], ys["train"], xs["val"], ys["val"], xs["test"], ys["test"],
                   num_classes=len(LABELS), input_range=input_range, class_names=list(LABELS), kind=kind, meta=meta)
