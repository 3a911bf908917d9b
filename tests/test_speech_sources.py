"""Speech Commands folders with mixed sources: npz + FLAC + wav, official lists, a test folder.

Every fixture is a small temporary folder built from real clips of
../shared/data/speech_commands (FLAC pool and toy npz), so the tests stay fast.
"""
from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tinyharden.data import audio_files as af
from tinyharden.data import speech_commands as sc
from tinyharden.data.base import find_data_dir
from tinyharden.errors import UserError
from tinyharden.recipe import DataSpec

SHARED = find_data_dir("speech_commands")
TOY = "speech_commands_train_blspeech_toy.npz"
WORDS = ("yes", "no", "left", "bed")
if SHARED is None or not (SHARED / TOY).is_file() or not (SHARED / "yes").is_dir():
    pytest.skip("the real Speech Commands pool (../shared/data/speech_commands) is not available", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYHARDEN_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def _flacs(word: str, k: int) -> list[Path]:
    return sorted((SHARED / word).glob("*.flac"))[:k]


def _write_wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.astype("<i2").tobytes())


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> dict:
    """4 FLAC clips of each of 4 words; 2 of them also as wav (the same clip twice); 2 more
    clips only as wav; 6 npz rows of the toy slice, one of which repeats a FLAC clip."""
    d = tmp_path_factory.mktemp("mixed")
    names: set[str] = set()
    for word in WORDS:
        for p in _flacs(word, 6)[:4]:
            (d / word).mkdir(exist_ok=True)
            shutil.copy(p, d / word / p.name)
            names.add(f"{word}/{p.stem}.wav")
    dup = [sorted((d / w).glob("*.flac"))[0] for w in ("yes", "no")]
    for p in dup:
        _write_wav(p.with_suffix(".wav"), sf.read(p, dtype="int16")[0])
    for p in _flacs("left", 6)[4:6]:
        _write_wav(d / "left" / f"{p.stem}.wav", sf.read(p, dtype="int16")[0])
        names.add(f"left/{p.stem}.wav")
    with np.load(SHARED / TOY, allow_pickle=False) as z:
        x, y, files = z["x"][:5], z["y"][:5], z["filenames"][:5].astype("<U64")
    repeated = sorted((d / "bed").glob("*.flac"))[0]
    x = np.concatenate([x, sf.read(repeated, dtype="int16")[0][None]])
    y = np.concatenate([y, [11]]).astype(np.uint8)
    files = np.concatenate([files, [f"bed/{repeated.stem}.wav"]])
    np.savez(d / "speech_commands_mixed.npz", x=x, y=y, filenames=files, class_names=np.array(sc.LABELS))
    names |= {str(f) for f in files}
    return {"dir": d, "names": names, "dup": dup}


def test_mixed_npz_flac_wav_folder_loads_every_clip_once(mixed):
    pool = sc.load_clips(str(mixed["dir"]))
    files = [str(f) for f in pool["files"]]
    assert len(files) == len(set(files)) == len(mixed["names"])  # no _silence_: the folder has no noise
    assert set(files) == mixed["names"]
    for p in mixed["dup"]:  # the FLAC and the wav of one clip are one clip, with its samples
        i = files.index(f"{p.parent.name}/{p.stem}.wav")
        np.testing.assert_array_equal(pool["wav"][i], sf.read(p, dtype="int16")[0])
    assert set(pool["y"][[files.index(n) for n in files if n.startswith("bed/")]]) == {11}


def test_flac_decodes_to_the_int16_samples_of_its_wav(tmp_path):
    src = _flacs("stop", 1)[0]
    samples, rate = sf.read(src, dtype="int16")
    wav = tmp_path / "stop" / f"{src.stem}.wav"
    _write_wav(wav, samples)
    with wave.open(str(wav)) as w:
        raw = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    decoded = af.read_audio(src)
    assert rate == 16000 and decoded.dtype == np.int16 and len(decoded) > 0
    np.testing.assert_array_equal(decoded, raw)
    np.testing.assert_array_equal(af.read_audio(wav), raw)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_flac_is_a_one_line_error_naming_the_file(tmp_path, damage):
    d = tmp_path / "data"
    good = _flacs("up", 2)
    (d / "up").mkdir(parents=True)
    shutil.copy(good[0], d / "up" / good[0].name)
    bad = d / "up" / good[1].name
    data = good[1].read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"fLaC" + bytes(range(256)) * 8)
    with pytest.raises(UserError) as exc:
        sc.load_clips(str(d))
    msg = str(exc.value)
    assert str(bad) in msg and "\n" not in msg and "replace the file" in msg


def test_official_lists_put_exactly_the_listed_clips_in_test(mixed, tmp_path):
    d = tmp_path / "archive"
    shutil.copytree(mixed["dir"], d)
    names = sorted(mixed["names"])
    test_names, val_names = names[:5], names[5:9]
    (d / "testing_list.txt").write_text("\n".join(n.replace(".wav", ".wav") for n in test_names) + "\n")
    (d / "validation_list.txt").write_text("\n".join(val_names) + "\n")
    parts = sc.split_pool(DataSpec(dataset="speech_commands", path=str(d)), 0, features=False)
    assert sorted(parts["test"]["files"].tolist()) == test_names
    assert sorted(parts["val"]["files"].tolist()) == val_names
    assert set(parts["train"]["files"].tolist()) == set(names) - set(test_names) - set(val_names)


def test_test_path_is_the_whole_test_split(mixed, tmp_path):
    test_dir = tmp_path / "official_test"
    picked = [_flacs(w, 8)[6:8] for w in ("yes", "down")]  # speakers beyond the mixed folder's
    for p in (p for group in picked for p in group):
        (test_dir / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, test_dir / p.parent.name / p.name)
    # a clip whose speaker is also in the training folder: that speaker leaves train/val
    shared_speaker = sorted((mixed["dir"] / "no").glob("*.flac"))[1]
    (test_dir / "no").mkdir()
    shutil.copy(shared_speaker, test_dir / "no" / shared_speaker.name)
    ds = sc.load_speech_commands(DataSpec(dataset="speech_commands", path=str(mixed["dir"]), test_path=str(test_dir),
                                          val_fraction=0.2), seed=0)
    expected = sorted(f"{p.parent.name}/{p.stem}.wav" for g in picked for p in g) + [f"no/{shared_speaker.stem}.wav"]
    assert sorted(ds.meta["files_test"]) == sorted(expected) and len(ds.y_test) == len(expected)
    speaker = sc.speaker_of(shared_speaker.name)
    assert speaker not in ds.meta["speakers_train"] + ds.meta["speakers_val"]
    assert not set(ds.meta["speakers_test"]) & (set(ds.meta["speakers_train"]) | set(ds.meta["speakers_val"]))


def test_no_speaker_in_two_folds_of_the_real_pool_slice(mixed):
    pool = sc.load_clips(str(mixed["dir"]))
    speakers = np.asarray(pool["speakers"])
    seen: dict[str, int] = {}
    for fold in range(3):
        _, _, test = sc.speaker_splits(speakers, 7, 0.1, fold=fold, folds=3)
        for s in set(speakers[test]):
            assert seen.setdefault(s, fold) == fold, f"speaker {s} in folds {seen[s]} and {fold}"
    assert set(seen) == set(speakers)


def test_canonical_names_match_the_archive_lists():
    assert af.canonical_name("yes/0a7c2a8d_nohash_0.flac") == "yes/0a7c2a8d_nohash_0.wav"
    assert af.canonical_name("yes/0a7c2a8d_nohash_0.WAV") == "yes/0a7c2a8d_nohash_0.wav"
    assert af.canonical_name("_background_noise_/x.wav@16000") == "_background_noise_/x.wav@16000"


# --------------------------------------------------------------------------- evaluate

REF_TFLITE = SHARED.parent / "mlperf_tiny" / "keyword_spotting" / "trained_models" / "kws_ref_model.tflite"
REF_SAVED = REF_TFLITE.with_suffix("")


@pytest.mark.skipif(not REF_TFLITE.is_file(), reason="the MLPerf KWS reference model is not in ../shared/data")
def test_evaluate_split_all_counts_every_clip(mixed, tmp_path):
    from typer.testing import CliRunner

    from tinyharden.cli.app import app

    r = CliRunner().invoke(app, ["-w", str(tmp_path / "ws"), "evaluate", str(REF_TFLITE), "--data", "speech_commands",
                                 "--data-path", str(mixed["dir"]), "--split", "all", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)["evaluation"]
    assert report["n"] == len(mixed["names"]) == sum(c["n"] for c in report["per_class"])
    assert report["per_class"][sc.LABELS.index("_silence_")]["n"] == 0  # no noise in the folder: no generated clips
    assert sum(map(sum, report["confusion"])) == report["n"] and report["correct"] == np.trace(report["confusion"])
    assert report["correct"] >= 0.8 * report["n"]  # the reference model knows these words
    lo, hi = report["wilson95"]
    assert lo <= report["accuracy"] <= hi
    run_dir = tmp_path / "ws" / "evaluate-kws_ref_model"
    assert (run_dir / "confusion-all.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "evaluate-all.json").is_file()


# --------------------------------------------------------------------------- waveform attack

@pytest.mark.slow  # loads the MLPerf SavedModel and runs PGD through the front end: ~1 min on 2 cores
def test_waveform_attack_stays_within_eps_and_in_pcm_range(mixed, tmp_path):
    from typer.testing import CliRunner

    from tinyharden.cli.app import app
    from tinyharden.models import load_model

    if not REF_SAVED.is_dir():
        pytest.skip("the MLPerf KWS reference SavedModel is not in ../shared/data")
    model = load_model(REF_SAVED)  # a real keyword spotter: it gets the clean clips right, so PGD has work
    model.save(tmp_path / "kws.h5")
    r = CliRunner().invoke(app, ["-w", str(tmp_path / "ws"), "attack", str(tmp_path / "kws.h5"), "--data", "speech_commands",
                                 "--data-path", str(mixed["dir"]), "--split", "all", "--space", "waveform", "-s", "fgsm,pgd",
                                 "--eps", "-40dB,-30dB", "-n", "6", "-p", "pgd.steps=3", "--no-checks", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["data"]["space"] == "waveform" and report["data"]["split"] == "all"
    assert report["config"]["eps"] == pytest.approx([10 ** -2 / 2, 10 ** -1.5 / 2], rel=1e-5)
    assert report["config"]["eps_label"] == ["-40.0 dB", "-30.0 dB"]
    with np.load(tmp_path / "ws" / "attack-kws" / "attack_examples.npz") as z:
        x = z["x"]
        assert x.shape == (6, 16000) and np.abs(x).max() == pytest.approx(1.0, abs=1e-6)  # peak-normalized clips
        keys = [k for k in z.files if "_eps" in k]
        assert keys
        for k in keys:
            eps_pcm = 10 ** ([-40, -30][int(k.rsplit("_eps", 1)[1])] / 20)  # relative to the peak of 1
            adv = z[k]
            assert np.abs(adv - x).max() <= eps_pcm * (1 + 1e-5) and np.abs(adv).max() <= 1.0 + 1e-6
            assert np.abs(adv - x).max() > 0.5 * eps_pcm  # the attack used its budget
    listening = report["listening"]
    assert listening["attack"] == "pgd" and len(listening["files"]) >= 2
    for f in listening["files"]:
        clip, rate = sf.read(tmp_path / "ws" / "attack-kws" / f, dtype="int16")
        assert rate == 16000 and clip.shape == (16000,) and sf.info(tmp_path / "ws" / "attack-kws" / f).subtype == "PCM_16"
    assert (tmp_path / "ws" / "attack-kws" / listening["spectrograms"]).read_bytes()[:4] == b"\x89PNG"
    pgd = next(a for a in report["attacks"] if a["name"] == "pgd")
    assert pgd["results"][-1]["robust_accuracy"]["value"] < report["clean"]["accuracy"]["value"]  # -30 dB fools an undefended model


def test_db_budgets_need_the_waveform_space():
    from tinyharden.attacks.budgets import to_data_units

    with pytest.raises(UserError, match="waveform"):
        to_data_units("-40dB", space="features")
    with pytest.raises(UserError, match="negative"):
        to_data_units("3dB", space="waveform")
    assert float(to_data_units("1step", space="features")) == pytest.approx(1 / 255, rel=1e-5)
