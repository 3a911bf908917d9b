"""The files of a Speech Commands folder: clips (npz, .wav, .flac), noise and official split lists.

    >>> from tinyharden.data import audio_files
    >>> paths = audio_files.audio_clip_files(Path("../shared/data/speech_commands"))  # doctest: +SKIP
    >>> audio_files.read_audio(paths[0]).dtype                                         # doctest: +SKIP
    dtype('int16')

Every clip is named the way the archive's own lists name it, `<word>/<stem>.wav`, whatever
its container: a FLAC copy of a wav and the wav itself are the same clip, and the names
match `validation_list.txt` / `testing_list.txt`. Decoding goes through `soundfile`
(libsndfile), which reads both WAV and FLAC. Importing this module does not import TensorFlow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyharden.errors import UserError

SAMPLE_RATE = 16000
NOISE_DIR = "_background_noise_"
AUDIO_SUFFIXES = (".wav", ".flac")
LIST_FILES = {"val": "validation_list.txt", "test": "testing_list.txt"}


def canonical_name(relative: str) -> str:
    """`word/x.flac` -> `word/x.wav`: the name the archive's lists use for the clip."""
    stem, dot, suffix = relative.rpartition(".")
    return f"{stem}.wav" if dot and f".{suffix.lower()}" in AUDIO_SUFFIXES else relative


def read_audio(path: Path) -> np.ndarray:
    """A .wav or .flac file as 1-D int16 samples at 16 kHz (first channel).

    A file that cannot be decoded, or decodes to fewer frames than its header declares
    (a truncated FLAC), is a UserError naming the file.
    """
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            rate, declared = f.samplerate, f.frames
            data = f.read(dtype="int16", always_2d=True)
    except (RuntimeError, OSError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"cannot decode '{path}' ({reason}); replace the file with an intact 16 kHz 16-bit copy") from None
    if rate != SAMPLE_RATE:
        raise UserError(f"'{path}' is sampled at {rate} Hz; resample it to {SAMPLE_RATE} Hz mono")
    if len(data) != declared:
        raise UserError(f"'{path}' decodes to {len(data)} of its {declared} frames (truncated or corrupt); "
                        "replace the file with an intact copy")
    return np.ascontiguousarray(data[:, 0])


def audio_clip_files(folder: Path) -> list[Path]:
    """The `<word>/<clip>.wav|.flac` files of the archive layout (not the background noise)."""
    return sorted(p for p in folder.glob("*/*") if p.suffix.lower() in AUDIO_SUFFIXES
                  and p.parent.name != NOISE_DIR and p.is_file())


def npz_clip_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("speech_commands*.npz") if "background_noise" not in p.name)


def noise_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*background_noise*.npz")) + sorted(
        p for p in (folder / NOISE_DIR).glob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def list_files(folder: Path) -> list[Path]:
    return [folder / n for n in LIST_FILES.values() if (folder / n).is_file()]


def official_lists(folder: Path) -> dict[str, set[str]] | None:
    """The archive's `validation_list.txt` / `testing_list.txt` as sets of clip names, or None
    when the folder has neither (a missing one is an empty split)."""
    if not list_files(folder):
        return None
    out: dict[str, set[str]] = {}
    for split, name in LIST_FILES.items():
        p = folder / name
        try:
            lines = p.read_text().splitlines() if p.is_file() else []
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read '{p}' ({exc}); it must list one <word>/<clip>.wav per line") from None
        out[split] = {canonical_name(s.strip()) for s in lines if s.strip()}
    return out


_FIX = "restore it from ../shared/data/speech_commands"


def open_npz(path: Path):
    """The npz at `path` through the one checker of damaged files (zero-byte, truncated, a lone .npy)."""
    from tinyharden.data.validate import open_npz as checked_open

    return checked_open(path, fix=_FIX)


def npz_member(z, path: Path, key: str) -> np.ndarray:
    from tinyharden.data.validate import read_member

    return read_member(z, path, key, fix=_FIX)


def read_npz_clips(path: Path, labels: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x [N, samples] int16, y int64, canonical names) of one speech_commands npz."""
    with open_npz(path) as z:
        missing = [k for k in ("x", "y", "filenames") if k not in z.files]
        if missing:
            raise UserError(
                f"'{path}' lacks the {', '.join(missing)} member(s) of a speech_commands npz (has {', '.join(z.files) or 'none'}); "
                "it needs x (N, 16000) int16, y (N,) labels 0..11 and filenames <word>/<speaker>_nohash_<n>.wav")
        if "class_names" in z.files:
            names = [str(c) for c in npz_member(z, path, "class_names")]
            if names != labels:
                raise UserError(f"'{path}' labels its classes {names}; relabel it to the order {labels}")
        x, y, files = (npz_member(z, path, k) for k in ("x", "y", "filenames"))
    if x.ndim != 2 or x.dtype != np.int16 or len(x) != len(y) or len(y) != len(files):
        raise UserError(f"'{path}': x is {x.dtype}{list(x.shape)} for {len(y)} labels and {len(files)} filenames; "
                        "it needs x (N, samples) int16 with one label and filename per row")
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= len(labels)):
        raise UserError(f"'{path}' has labels outside 0..{len(labels) - 1}; relabel it to the 12-class order {labels}")
    return x, y, np.array([canonical_name(str(f)) for f in files], dtype=str)


def read_noise(folder: Path) -> dict[str, np.ndarray]:
    """name -> 1-D int16 recording, from `*background_noise*.npz` and `_background_noise_/*.wav|.flac`."""
    noise: dict[str, np.ndarray] = {}
    for p in noise_files(folder):
        if p.suffix.lower() in AUDIO_SUFFIXES:
            noise.setdefault(p.stem, read_audio(p))
            continue
        with open_npz(p) as z:
            for k in z.files:
                a = npz_member(z, p, k)
                if a.ndim == 1 and a.dtype == np.int16:
                    noise.setdefault(k, a)
    return noise
