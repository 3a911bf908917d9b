"""Checkpoints that are verified before they are trusted, and a lock on the run folder.

    >>> lock_run_dir(Path("runs/quickstart"))  # raises UserError if another process writes it

A resume must never silently start over nor continue from damaged state. So the
checkpoint index (`checkpoints/checkpoint`) is not trusted: the `ckpt-N` files on disk are,
newest first; each is read in full (TensorFlow checks every tensor's CRC) before it is
restored, a damaged one is named and the previous one used, and if checkpoint files exist
but none is readable the resume is refused. A run folder is locked (`flock`, released by
the kernel when the process dies, so a kill -9 leaves no stale lock) while a process
writes it, and `train.log` is cut back to the restored epoch so each epoch appears once.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from tinyharden.errors import UserError

_HELD: dict[str, int] = {}  # run folder -> lock fd, per process (re-entrant within it)
_CKPT = re.compile(r"^ckpt-(\d+)\.index$")


def lock_run_dir(run_dir: Path) -> None:
    """Hold an exclusive lock on `run_dir` until this process exits; refuse if another holds it."""
    import fcntl

    key = str(Path(run_dir).resolve())
    if key in _HELD:
        return
    path = Path(run_dir) / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot lock run folder '{run_dir}' ({exc.strerror}); check it is writable") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise UserError(f"run folder '{run_dir}' is in use by another tinyharden process (pid {other}); "
                        "wait for it to finish or stop it before resuming") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _HELD[key] = fd


def unlock_run_dir(run_dir: Path) -> None:
    """Release this process's lock on `run_dir`, if it holds one."""
    fd = _HELD.pop(str(Path(run_dir).resolve()), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


def checkpoint_numbers(folder: Path) -> list[int]:
    """Numbers N of the `ckpt-N` checkpoints in `folder`, newest first (index file ignored)."""
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)) for p in folder.iterdir() if (m := _CKPT.match(p.name))), reverse=True)


def damage(prefix: Path) -> str | None:
    """Why the checkpoint `prefix` cannot be read in full, or None if every tensor reads back."""
    from tinyharden._tf import tf

    try:
        reader = tf.train.load_checkpoint(str(prefix))
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as exc:  # noqa: BLE001 - the reader raises IndexError, DataLossError, ... for damage
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return first[:120]
    return None


def repair_index(folder: Path) -> None:
    """Rewrite `folder/checkpoint` from the files on disk when it is unreadable or points nowhere.

    `tf.train.CheckpointManager` parses the index when it is built; a garbage one would
    raise there, or point at a checkpoint that no longer exists.
    """
    from tinyharden._tf import tf

    index = folder / "checkpoint"
    if not index.exists():
        return
    try:
        state = tf.train.get_checkpoint_state(str(folder))
        if state is not None and Path(state.model_checkpoint_path + ".index").is_file():
            return
    except Exception:  # noqa: BLE001 - text_format raises its own ParseError, and others
        pass
    from tinyharden.workspace import atomic_write_text

    nums = checkpoint_numbers(folder)
    if not nums:
        index.unlink()
        return
    lines = [f'model_checkpoint_path: "ckpt-{nums[0]}"'] + [f'all_model_checkpoint_paths: "ckpt-{n}"' for n in reversed(nums)]
    atomic_write_text(index, "\n".join(lines) + "\n")


def restore_verified(restore: Callable[[str], None], folder: Path, *, warn: Callable[[str], None]) -> int | None:
    """Restore (via `restore(prefix)`) the newest readable checkpoint in `folder`; its number.

    None when the folder holds no checkpoint at all. Damaged checkpoints are named through
    `warn` and skipped; if checkpoint files exist but none is readable, a `UserError`.
    """
    nums = checkpoint_numbers(folder)
    leftovers = [p.name for p in folder.glob("ckpt-*")] if folder.is_dir() else []
    if not nums:
        if leftovers:
            raise UserError(f"'{folder}' holds checkpoint data ({leftovers[0]}) but no checkpoint index file "
                            "(ckpt-N.index); the run cannot resume: start a new run")
        return None
    for n in nums:
        prefix = folder / f"ckpt-{n}"
        problem = damage(prefix)
        if problem is None:
            restore(str(prefix))
            return n
        warn(f"checkpoint '{prefix}' is damaged ({problem}); trying the previous one")
    raise UserError(f"every checkpoint in '{folder}' is damaged (newest: ckpt-{nums[0]}); the run cannot resume: "
                    "start a new run")


def cut_log(log: Path, epochs: int) -> None:
    """Keep `log` up to the line of epoch `epochs` (a redone epoch is then logged once)."""
    from tinyharden.workspace import atomic_write_text

    if not log.is_file():
        return
    keep: list[str] = []
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    cut = 0
    for i, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("epoch"), int) and entry["epoch"] <= epochs:
            cut = i + 1
    keep = lines[:cut]
    if len(keep) != len(lines):
        atomic_write_text(log, "".join(line + "\n" for line in keep))
