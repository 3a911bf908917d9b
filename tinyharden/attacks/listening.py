"""Adversarial clips a person can listen to and look at: 16-bit WAVs and a log-mel PNG.

    >>> info = write_listening_examples(run_dir, report, x01, examples, class_names=LABELS)  # doctest: +SKIP
    >>> info["files"][:2]                                                                     # doctest: +SKIP
    ['listen/clean_0_yes.wav', 'listen/adv_0_yes_as_no_-40.0dB.wav']

For a waveform-space attack on Speech Commands: the attack (PGD if it ran, else the first
fixed-eps attack) at the smallest eps that fooled a clean-correct clip; up to `k` such
clips are written beside their clean versions under `listen/`, with a PNG of the clean and
adversarial log-mel spectrograms (the front end's own, `frontend.log_mel`). Inputs are in
[0, 1] data units of the [-1, 1] waveform.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinyharden.attacks.budgets import label
from tinyharden.data import frontend
from tinyharden.workspace import atomic_path

FOLDER = "listen"


def _choose(report: Mapping[str, Any]) -> tuple[str, int, np.ndarray] | None:
    """(attack, eps index, fooled sample indices) of the smallest eps that fooled a clip."""
    per_sample = report["per_sample"]
    fixed = [a["name"] for a in report["attacks"] if not a["minimum_norm"]]
    order = (["pgd"] if "pgd" in fixed else []) + [a for a in fixed if a != "pgd"]
    label_, correct = np.asarray(per_sample["label"]), np.asarray(per_sample["clean_correct"], bool)
    for name in order:
        for i, pred in enumerate(per_sample["attacks"][name]["adv_pred"]):
            fooled = np.flatnonzero(correct & (np.asarray(pred) != label_))
            if len(fooled):
                return name, i, fooled
    return None


def _wav(path: Path, samples: np.ndarray) -> None:
    import soundfile as sf

    pcm = np.round(np.clip(samples, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, frontend.SAMPLE_RATE, subtype="PCM_16", format="WAV")


def _spectrogram_png(path: Path, clean: np.ndarray, adv: np.ndarray, titles: Sequence[tuple[str, str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mel_c, mel_a = frontend.log_mel(clean).numpy(), frontend.log_mel(adv).numpy()
    lo, hi = float(np.percentile(mel_c, 1)), float(mel_c.max())
    fig, axes = plt.subplots(len(clean), 2, figsize=(8, 2.2 * len(clean)), dpi=100, squeeze=False)
    for row, (c, a, (tc, ta)) in enumerate(zip(mel_c, mel_a, titles)):
        for ax, m, t in ((axes[row, 0], c, tc), (axes[row, 1], a, ta)):
            ax.imshow(m.T, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma")
            ax.set_title(t, fontsize=8)
            ax.set_xlabel("frame (20 ms)", fontsize=7)
            ax.set_ylabel("mel bin", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_listening_examples(run_dir: Path, report: Mapping[str, Any], x01: np.ndarray,
                             examples: Mapping[str, np.ndarray], *, class_names: Sequence[str],
                             k: int = 4) -> dict[str, Any] | None:
    """Write up to `k` clean/adversarial WAV pairs and their spectrogram PNG; None if nothing was fooled."""
    chosen = _choose(report)
    if chosen is None:
        return None
    name, e_idx, fooled = chosen
    adv_all = examples.get(f"{name}_eps{e_idx}")
    if adv_all is None:
        return None
    eps = report["config"]["eps"][e_idx]
    eps_text = label(eps, space="waveform")
    pick = fooled[:k]
    pred = np.asarray(report["per_sample"]["attacks"][name]["adv_pred"][e_idx])
    y = np.asarray(report["per_sample"]["label"])
    clean, adv = 2.0 * x01[pick] - 1.0, 2.0 * adv_all[pick] - 1.0
    files, titles = [], []
    folder = Path(run_dir) / FOLDER
    for j, i in enumerate(pick):
        word, as_word = class_names[y[i]], class_names[pred[i]]
        c_name = f"clean_{i}_{word}.wav"
        a_name = f"adv_{i}_{word}_as_{as_word}_{eps_text.replace(' ', '')}.wav"
        _wav(folder / c_name, clean[j])
        _wav(folder / a_name, adv[j])
        files += [f"{FOLDER}/{c_name}", f"{FOLDER}/{a_name}"]
        titles.append((f"clean #{i}: '{word}'", f"{name} at {eps_text} re. peak: heard as '{as_word}'"))
    png = f"{FOLDER}/spectrograms.png"
    _spectrogram_png(Path(run_dir) / png, clean, adv, titles)
    return {"attack": name, "eps": eps, "eps_label": eps_text, "samples": [int(i) for i in pick],
            "files": files, "spectrograms": png,
            "note": "16-bit PCM at 16 kHz; waveforms peak-normalized to 1 as the model sees them"}
