"""Google Speech Commands as 12-class keyword spotting (the MLPerf Tiny KWS task).

Labels: 0 down, 1 go, 2 left, 3 no, 4 off, 5 on, 6 right, 7 stop, 8 up, 9 yes,
10 _silence_, 11 _unknown_ (every other word).

Sources, in the data folder (data.path, else $TINYHARDEN_DATA/speech_commands or
../shared/data/speech_commands):
1. npz layout: every `speech_commands*.npz` holding `x` (N, samples) int16 at 16 kHz,
   `y` (N,) labels in the order above and `filenames` `<word>/<speaker>_nohash_<n>.wav`;
   background noise from `*background_noise*.npz` (1-D int16 recordings);
2. the archive's wav layout: `<word>/<speaker>_nohash_<n>.wav` (16 kHz mono),
   `_background_noise_/*.wav`; `_silence_/` and `_unknown_/` folders are honoured.
Clips are padded/trimmed to 1 s, de-duplicated by filename and sorted by it, so both
layouts give the same dataset. `_silence_` clips are cut from the background noise:
non-overlapping 1 s windows, as many as SILENCE_FRACTION of the other clips.

Splits are by speaker (the hash before `_nohash_`), never sharing one: with data.fold
unset, TEST_FRACTION of the clips go to test; with data.fold = k, speaker fold k of
data.folds is the test split (k-fold cross-validation). data.val_fraction of the rest is
validation. Both are deterministic given the seed.

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
from typing import Mapping, Sequence

import numpy as np

from tinyharden.data import frontend
from tinyharden.data.base import Dataset, find_data_dir
from tinyharden.errors import UserError
from tinyharden.data.validate import NPZ_ERRORS

LABELS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_"]
KEYWORDS = LABELS[:10]
SILENCE, UNKNOWN = 10, 11
NOISE_DIR = "_background_noise_"
SAMPLE_RATE = frontend.SAMPLE_RATE
CLIP_SAMPLES = frontend.CLIP_SAMPLES
TEST_FRACTION = 0.1  # share of clips in the test split when data.fold is unset (as the archive's own split)
SILENCE_FRACTION = 0.1  # _silence_ clips added per other clip (the Speech Commands training default)
_NOISE_GROUP_SECONDS = 10  # silence windows of one recording this close share a split
_SPEAKER = re.compile(r"([^/_]+)_nohash_")
_CACHE_FORMAT = "1"  # bump when the cached arrays change meaning


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

def _read_wav(path: Path) -> np.ndarray:
    """A wav file as 1-D int16 at 16 kHz (first channel)."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read '{path}' as a wav file ({exc}); use 16 kHz 16-bit PCM wavs") from None
    if rate != SAMPLE_RATE:
        raise UserError(f"'{path}' is sampled at {rate} Hz; resample it to {SAMPLE_RATE} Hz mono")
    if data.ndim > 1:
        data = data[:, 0]
    if data.dtype == np.int16:
        return data
    if data.dtype == np.int32:
        return (data >> 16).astype(np.int16)
    if data.dtype == np.uint8:
        return ((data.astype(np.int16) - 128) << 8).astype(np.int16)
    if data.dtype.kind == "f":
        return np.round(np.clip(data, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    raise UserError(f"'{path}' holds {data.dtype} samples; use 16 kHz 16-bit PCM wavs")


def _npz_member(z, path: Path, key: str) -> np.ndarray:
    try:
        return z[key]
    except NPZ_ERRORS as exc:
        raise UserError(f"cannot read '{key}' from '{path}' ({exc}); restore the file from ../shared/data/speech_commands") from None


def _clip_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("speech_commands*.npz") if "background_noise" not in p.name)


def _noise_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*background_noise*.npz")) + sorted((folder / NOISE_DIR).glob("*.wav"))


def _wav_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*/*.wav") if p.parent.name != NOISE_DIR)


def _open_npz(path: Path):
    if path.stat().st_size == 0:
        raise UserError(f"'{path}' is empty (0 bytes); restore it from ../shared/data/speech_commands")
    try:
        return np.load(path, allow_pickle=False)
    except NPZ_ERRORS as exc:
        raise UserError(f"'{path}' is not a readable npz file ({exc}); restore it from ../shared/data/speech_commands") from None


def _read_npz_clips(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with _open_npz(path) as z:
        missing = [k for k in ("x", "y", "filenames") if k not in z.files]
        if missing:
            raise UserError(
                f"'{path}' lacks the {', '.join(missing)} member(s) of a speech_commands npz (has {', '.join(z.files) or 'none'}); "
                "it needs x (N, 16000) int16, y (N,) labels 0..11 and filenames <word>/<speaker>_nohash_<n>.wav")
        if "class_names" in z.files:
            names = [str(c) for c in _npz_member(z, path, "class_names")]
            if names != LABELS:
                raise UserError(f"'{path}' labels its classes {names}; relabel it to the order {LABELS}")
        x, y, files = (_npz_member(z, path, k) for k in ("x", "y", "filenames"))
    if x.ndim != 2 or x.dtype != np.int16 or len(x) != len(y) or len(y) != len(files):
        raise UserError(f"'{path}': x is {x.dtype}{list(x.shape)} for {len(y)} labels and {len(files)} filenames; "
                        "it needs x (N, samples) int16 with one label and filename per row")
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= len(LABELS)):
        raise UserError(f"'{path}' has labels outside 0..{len(LABELS) - 1}; relabel it to the 12-class order {LABELS}")
    return _fit(x), y, files.astype(str)


def load_background_noise(path: str | None = None) -> dict[str, np.ndarray]:
    """The background-noise recordings of the data folder: name -> 1-D float32 in [-1, 1] (int16 / 32768).

    Empty when the folder has none. Read from `*background_noise*.npz` and `_background_noise_/*.wav`.
    """
    folder = _data_folder(path)
    return {k: v.astype(np.float32) / 32768.0 for k, v in _read_noise(folder).items()}


def _read_noise(folder: Path) -> dict[str, np.ndarray]:
    noise: dict[str, np.ndarray] = {}
    for p in _noise_files(folder):
        if p.suffix == ".wav":
            noise.setdefault(p.stem, _read_wav(p))
            continue
        with _open_npz(p) as z:
            for k in z.files:
                a = _npz_member(z, p, k)
                if a.ndim == 1 and a.dtype == np.int16:
                    noise.setdefault(k, a)
    return noise


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


def _source(folder: Path) -> str:
    if _clip_files(folder):
        return "npz"
    if _wav_files(folder):
        return "wav"
    raise UserError(
        f"no Speech Commands clips in '{folder}'; expected speech_commands*.npz files (x, y, filenames) "
        "or the archive's <word>/<speaker>_nohash_<n>.wav folders")


def _read_pool(folder: Path, kind: str) -> dict[str, np.ndarray]:
    """All clips of the folder plus generated _silence_ clips, sorted by filename."""
    if kind == "npz":
        parts = [_read_npz_clips(p) for p in _clip_files(folder)]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        files = np.concatenate([p[2] for p in parts])
    else:
        paths = _wav_files(folder)
        files = np.array([f"{p.parent.name}/{p.name}" for p in paths])
        y = np.array([label_of_word(p.parent.name) for p in paths], np.int64)
        x = np.empty((len(paths), CLIP_SAMPLES), np.int16)  # filled in place: the full archive is ~3 GB
        for i, p in enumerate(paths):
            x[i] = _fit(_read_wav(p))
    files, first = np.unique(files, return_index=True)  # sorted; a clip found twice counts once
    x, y = x[first], y[first]
    groups = [speaker_of(f) for f in files]
    want = int(round(SILENCE_FRACTION * np.sum(y != SILENCE))) - int(np.sum(y == SILENCE))
    sx, sy, sfiles, sgroups = _silence_clips(_read_noise(folder), want)
    files = np.concatenate([files, sfiles]).astype(str)
    order = np.argsort(files, kind="stable")
    return {"wav": np.concatenate([x, sx])[order], "y": np.concatenate([y, sy])[order],
            "files": files[order], "speakers": np.array(groups + sgroups, dtype=str)[order]}


# --------------------------------------------------------------------------- cache

def _cache_dir(folder: Path, kind: str) -> Path:
    files = _clip_files(folder) + _noise_files(folder) if kind == "npz" else _wav_files(folder) + _noise_files(folder)
    stats = [(str(p.relative_to(folder)), p.stat().st_size, int(p.stat().st_mtime)) for p in files]
    key = repr((_CACHE_FORMAT, frontend.FRONTEND_VERSION, SILENCE_FRACTION, kind, str(folder.resolve()), stats))
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
    kind = _source(folder)
    cache = _cache_dir(folder, kind)
    data_key = "features" if features else "wav"
    pool = _load(cache, ["files", "speakers", "y", data_key])
    if pool is not None:
        return pool
    pool = _load(cache, ["files", "speakers", "y", "wav"])
    if pool is None:
        pool = _read_pool(folder, kind)
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


# --------------------------------------------------------------------------- splits

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

def _peak_normalize(wav: np.ndarray) -> np.ndarray:
    x = wav.astype(np.float32)
    peak = np.abs(x).max(axis=1, keepdims=True)
    return x / np.maximum(peak, 1.0)  # digital silence stays zeros


def train_waveforms(spec, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The train split's clips as float32 in [-1, 1], in the order of `load_speech_commands`'
    x_train, and the background-noise recordings: what audio augmentation needs."""
    pool = load_clips(spec.path, features=False)
    tr, _, _ = speaker_splits(pool["speakers"], seed, spec.val_fraction, fold=spec.fold, folds=spec.folds)
    return pool["wav"][tr].astype(np.float32) / 32768.0, load_background_noise(spec.path)


def load_speech_commands(spec, seed: int) -> Dataset:
    """The dataset of a recipe's `data:` section (path, val_fraction, fold, folds, space)."""
    waveform = spec.space == "waveform"
    pool = load_clips(spec.path, features=not waveform)
    tr, va, te = speaker_splits(pool["speakers"], seed, spec.val_fraction, fold=spec.fold, folds=spec.folds)
    if waveform:
        x = _peak_normalize(pool["wav"])
        input_range, kind = (-1.0, 1.0), "audio_waveform"
    else:
        x = pool["features"]
        input_range, kind = (float(frontend.FEATURE_RANGE[0]), float(frontend.FEATURE_RANGE[1])), "audio_features"
    y, spk, files = pool["y"], pool["speakers"], pool["files"]
    meta = {
        "space": spec.space, "sample_rate": SAMPLE_RATE, "fold": -1 if spec.fold is None else spec.fold,
        "folds": spec.folds, "silence_clips": int(np.sum([f.startswith(NOISE_DIR) for f in files])),
        "speakers_train": sorted(set(spk[tr])), "speakers_val": sorted(set(spk[va])), "speakers_test": sorted(set(spk[te])),
        "files_test": files[te].tolist(),
    }
    if waveform:
        meta["background_noise"] = load_background_noise(spec.path)
    else:  # the reference model's int8 input quantization, for export and int8 evaluation
        meta.update(input_scale=frontend.INPUT_SCALE, input_zero_point=frontend.INPUT_ZERO_POINT)
    return Dataset("speech_commands", x[tr], y[tr], x[va], y[va], x[te], y[te], num_classes=len(LABELS),
                   input_range=input_range, class_names=list(LABELS), kind=kind, meta=meta)
