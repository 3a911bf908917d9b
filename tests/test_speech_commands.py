"""Speech Commands: loader, speaker splits, MFCC front end and the MLPerf reference model.

Runs on the real slice in ../shared/data/speech_commands (the toy npz and the background
noise, linked into a temporary folder so a larger pool added there later does not slow
these tests down) and on small wav/npz fixtures built from it.
"""
from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from tinyharden.data import frontend
from tinyharden.data import speech_commands as sc
from tinyharden.data.base import find_data_dir
from tinyharden.errors import UserError
from tinyharden.recipe import DataSpec

SHARED = find_data_dir("speech_commands")
TOY = "speech_commands_train_blspeech_toy.npz"
NOISE = "speech_commands_v0.02_background_noise.npz"
if SHARED is None or not (SHARED / TOY).is_file():
    pytest.skip("the real Speech Commands slice (../shared/data/speech_commands) is not available", allow_module_level=True)
REF_MODEL = SHARED.parent / "mlperf_tiny" / "keyword_spotting" / "trained_models" / "kws_ref_model.tflite"


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYHARDEN_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("toy")
    for name in (TOY, NOISE):
        (d / name).symlink_to(SHARED / name)
    return d


def spec(path, **kw) -> DataSpec:
    return DataSpec(dataset="speech_commands", path=str(path), **kw)


@pytest.fixture(scope="module")
def toy(toy_dir):
    return sc.load_speech_commands(spec(toy_dir), seed=0)


@pytest.fixture(scope="module")
def toy_arrays():
    with np.load(SHARED / TOY, allow_pickle=False) as z:
        return z["x"], z["y"].astype(np.int64), z["filenames"].astype(str)


def _interpreter():
    from tinyharden._tf import tf

    it = tf.lite.Interpreter(model_path=str(REF_MODEL))
    it.allocate_tensors()
    return it


# --------------------------------------------------------------------------- front end

def test_quantization_constants_match_reference_model():
    inp = _interpreter().get_input_details()[0]
    scale, zero_point = inp["quantization"]
    assert np.float32(frontend.INPUT_SCALE) == np.float32(scale)
    assert frontend.INPUT_ZERO_POINT == zero_point == 83
    assert tuple(inp["shape"][1:]) == frontend.FEATURE_SHAPE == (49, 10, 1)
    lo, hi = frontend.FEATURE_RANGE
    assert lo == pytest.approx((-128 - 83) * scale) and hi == pytest.approx((127 - 83) * scale)
    q = np.arange(-128, 128, dtype=np.int8)
    np.testing.assert_array_equal(frontend.quantize(frontend.dequantize(q)), q)


def test_mfcc_shape_deterministic_finite(toy_arrays):
    wav = toy_arrays[0][:4].astype(np.float32) / 32768
    a, b = frontend.mfcc(wav).numpy(), frontend.mfcc(wav).numpy()
    assert a.shape == (4, 49, 10, 1) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all()
    lo, hi = frontend.FEATURE_RANGE
    assert a.min() >= lo and a.max() <= hi
    # scale-invariant (MLPerf peak-normalizes), pads short clips, survives digital silence
    np.testing.assert_allclose(frontend.mfcc(wav * 0.25).numpy(), a, atol=1e-3)
    np.testing.assert_allclose(frontend.mfcc(wav[:, :, None]).numpy(), a)
    short = np.pad(wav[:, :12000], [(0, 0), (0, 4000)])
    np.testing.assert_allclose(frontend.mfcc(wav[:, :12000]).numpy(), frontend.mfcc(short).numpy())
    assert np.isfinite(frontend.mfcc(np.zeros((1, 16000), np.float32)).numpy()).all()


def test_mfcc_is_differentiable(toy_arrays):
    from tinyharden._tf import tf

    w = tf.constant(toy_arrays[0][:2].astype(np.float32) / 32768)
    with tf.GradientTape() as tape:
        tape.watch(w)
        out = tf.reduce_sum(frontend.mfcc(w))
    g = tape.gradient(out, w).numpy()
    assert g.shape == (2, 16000) and np.isfinite(g).all()
    assert (np.abs(g).sum(axis=1) > 0).all()


def test_frontend_and_package_import_without_tensorflow():
    code = ("import sys, tinyharden.data, tinyharden.data.frontend, tinyharden.data.speech_commands; "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# --------------------------------------------------------------------------- loader

def test_loader_on_real_slice(toy):
    assert toy.kind == "audio_features" and toy.num_classes == 12 and toy.class_names == sc.LABELS
    assert toy.input_shape == (49, 10, 1)
    lo, hi = toy.input_range
    assert (lo, hi) == pytest.approx(frontend.FEATURE_RANGE)
    ys = [toy.y_train, toy.y_val, toy.y_test]
    for x, y in zip([toy.x_train, toy.x_val, toy.x_test], ys):
        assert x.dtype == np.float32 and y.dtype == np.int64 and len(x) == len(y) > 0
        assert np.isfinite(x).all() and x.min() >= lo and x.max() <= hi
        assert y.min() >= 0 and y.max() <= 11
    counts = np.bincount(np.concatenate(ys), minlength=12)
    assert counts[:10].sum() == 72 and counts[11] == 205  # the toy npz's keyword and unknown clips
    assert counts[10] == toy.meta["silence_clips"] == round(0.1 * 277)
    assert len(toy.y_test) == pytest.approx(0.1 * counts.sum(), abs=3)
    assert len(toy.y_val) == pytest.approx(0.1 * (counts.sum() - len(toy.y_test)), abs=3)


def test_waveform_space_matches_features(toy, toy_dir):
    ds = sc.load_speech_commands(spec(toy_dir, space="waveform"), seed=0)
    assert ds.kind == "audio_waveform" and ds.input_range == (-1.0, 1.0)
    assert ds.x_test.shape == (len(toy.y_test), 16000) and ds.x_test.dtype == np.float32
    np.testing.assert_array_equal(ds.y_test, toy.y_test)
    assert np.abs(ds.x_train).max() <= 1.0
    np.testing.assert_allclose(np.abs(ds.x_test).max(axis=1), 1.0)
    np.testing.assert_allclose(frontend.mfcc(ds.x_test).numpy(), toy.x_test, atol=2e-3)
    assert sorted(ds.meta["background_noise"]) == sorted(
        ["doing_the_dishes", "dude_miaowing", "exercise_bike", "pink_noise", "running_tap", "white_noise"])


def test_cache_is_reused(toy_dir, toy):
    again = sc.load_speech_commands(spec(toy_dir), seed=0)
    np.testing.assert_array_equal(again.x_train, toy.x_train)
    cached = list(sc._cache_dir(toy_dir).glob("*.npy"))
    assert {p.stem for p in cached} >= {"files", "speakers", "y", "wav", "features"}


# --------------------------------------------------------------------------- splits

@pytest.fixture(scope="module")
def speakers(toy_dir, toy):
    return sc.load_clips(str(toy_dir), features=True)["speakers"]


def _disjoint(speakers, splits):
    sets = [set(speakers[i]) for i in splits]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    np.testing.assert_array_equal(np.sort(np.concatenate(splits)), np.arange(len(speakers)))
    return sets


@pytest.mark.parametrize("seed", [0, 1, 2, 7, 123])
def test_speaker_disjoint_split(speakers, seed):
    _disjoint(speakers, sc.speaker_splits(speakers, seed, 0.1))


def test_kfold_by_speaker_covers_all_speakers(speakers):
    test_sets, sizes = [], []
    for fold in range(5):
        splits = sc.speaker_splits(speakers, 3, 0.1, fold=fold, folds=5)
        test_sets.append(_disjoint(speakers, splits)[2])
        sizes.append(len(splits[2]))
    assert set().union(*test_sets) == set(speakers)
    assert sum(len(s) for s in test_sets) == len(set(speakers))  # each speaker in exactly one test fold
    assert max(sizes) - min(sizes) <= 3


def test_loader_fold_meta(toy_dir):
    ds = sc.load_speech_commands(spec(toy_dir, fold=2, folds=4), seed=5)
    tr, va, te = (set(ds.meta[f"speakers_{s}"]) for s in ("train", "val", "test"))
    assert tr and va and te and not (tr & va) and not (tr & te) and not (va & te)
    assert ds.meta["fold"] == 2 and ds.summary()["folds"] == 4
    with pytest.raises(UserError, match="data.fold"):
        sc.load_speech_commands(spec(toy_dir, fold=4, folds=4), seed=5)


def test_speaker_of():
    assert sc.speaker_of("left/0c540988_nohash_1.wav") == "0c540988"
    assert sc.speaker_of("_unknown_/backward_0c540988_nohash_0.wav") == "0c540988"
    assert sc.speaker_of("_silence_/clip_3.wav") == "_silence_/clip_3.wav"


# --------------------------------------------------------------------------- wav layout

def _write_wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.astype("<i2").tobytes())


def _build_layouts(root: Path, x, y, files) -> tuple[Path, Path]:
    """The same few clips and 5 s of each noise recording, as wav folders and as npz files."""
    pick = np.concatenate([np.flatnonzero(y == c)[:3] for c in range(10)] + [np.flatnonzero(y == 11)[:6]])
    x, y, files = x[pick], y[pick], files[pick].astype("<U64")  # room for the longer name below
    files[0] = "_unknown_/" + files[0].replace("/", "_")  # the test archive's _unknown_ folder
    y[0] = 11
    with np.load(SHARED / NOISE, allow_pickle=False) as z:
        noise = {k: z[k][:5 * 16000] for k in z.files if z[k].ndim == 1}
    wav_dir, npz_dir = root / "wav", root / "npz"
    for clip, name in zip(x, files):
        tail = np.flatnonzero(clip)
        _write_wav(wav_dir / name, clip[: tail[-1] + 1 if len(tail) else 0])  # short wavs are padded back
    for name, rec in noise.items():
        _write_wav(wav_dir / "_background_noise_" / f"{name}.wav", rec)
    (wav_dir / "README.md").write_text("not a clip\n")
    npz_dir.mkdir()
    np.savez(npz_dir / "speech_commands_fixture.npz", x=x, y=y.astype(np.uint8), filenames=files,
             class_names=np.array(sc.LABELS))
    np.savez(npz_dir / NOISE, sample_rate=np.int64(16000), **noise)
    return wav_dir, npz_dir


def test_wav_folder_loads_like_npz(tmp_path, toy_arrays):
    wav_dir, npz_dir = _build_layouts(tmp_path, *toy_arrays)
    a = sc.load_clips(str(wav_dir), features=True)
    b = sc.load_clips(str(npz_dir), features=True)
    for k in ("files", "speakers", "y", "features"):
        np.testing.assert_array_equal(a[k], b[k])
    assert len(a["y"]) == 36 + 4 and np.sum(a["y"] == 10) == 4
    da = sc.load_speech_commands(spec(wav_dir), seed=1)
    db = sc.load_speech_commands(spec(npz_dir), seed=1)
    np.testing.assert_array_equal(da.x_train, db.x_train)
    np.testing.assert_array_equal(da.y_test, db.y_test)


# --------------------------------------------------------------------------- acceptance

def test_reference_model_accuracy_on_our_features(toy):
    """kws_ref_model.tflite (int8) must recognise the keyword clips from our features."""
    x = np.concatenate([toy.x_train, toy.x_val, toy.x_test])
    y = np.concatenate([toy.y_train, toy.y_val, toy.y_test])
    keep = y < 10
    q, y = frontend.quantize(x[keep]), y[keep]
    it = _interpreter()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    pred = []
    for sample in q:
        it.set_tensor(inp["index"], sample[None])
        it.invoke()
        pred.append(int(np.argmax(it.get_tensor(out["index"]))))
    acc = float(np.mean(np.array(pred) == y))
    print(f"kws_ref_model.tflite keyword accuracy on tinyharden features: {acc:.1%} of {len(y)}")
    assert len(y) == 72 and acc >= 0.85


# --------------------------------------------------------------------------- augmentation

def test_augment_waveforms(toy_arrays):
    wav = toy_arrays[0][:8].astype(np.float32) / 32768
    np.testing.assert_array_equal(sc.augment_waveforms(wav, 0, noise_prob=0, shift_ms=0), wav)
    noise = {"white": (np.random.default_rng(0).standard_normal(40000) * 3000).astype(np.int16)}
    a = sc.augment_waveforms(wav, 1, noise_prob=1.0, noise_volume=0.5, shift_ms=100, noise_clips=noise)
    b = sc.augment_waveforms(wav, 1, noise_prob=1.0, noise_volume=0.5, shift_ms=100, noise_clips=noise)
    np.testing.assert_array_equal(a, b)
    assert a.shape == wav.shape and a.dtype == np.float32 and np.abs(a).max() <= 1.0
    assert not np.allclose(a, wav)
    shifted = sc.augment_waveforms(wav, 2, noise_prob=0, shift_ms=10)  # at most 160 samples
    assert any(np.array_equal(shifted[0, 160:-160], wav[0, 160 + s:len(wav[0]) - 160 + s]) for s in range(-160, 161))


# --------------------------------------------------------------------------- bad input

def test_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        sc.load_speech_commands(spec(tmp_path / "nope"), seed=0)
    with pytest.raises(UserError, match="no Speech Commands clips"):
        sc.load_speech_commands(spec(tmp_path), seed=0)


def test_npz_without_members_is_a_user_error(tmp_path):
    np.savez(tmp_path / "speech_commands_bad.npz", x=np.zeros((2, 16000), np.int16))
    with pytest.raises(UserError, match="lacks the y, filenames") as err:
        sc.load_speech_commands(spec(tmp_path), seed=0)
    assert "\n" not in str(err.value)
    np.savez(tmp_path / "speech_commands_bad.npz", x=np.zeros((2, 16000), np.int16), y=np.array([0, 12]),
             filenames=np.array(["a/1_nohash_0.wav", "b/2_nohash_0.wav"]))
    with pytest.raises(UserError, match="outside 0..11"):
        sc.load_speech_commands(spec(tmp_path), seed=0)


def test_wrong_sample_rate_is_a_user_error(tmp_path):
    path = tmp_path / "yes" / "abc_nohash_0.wav"
    path.parent.mkdir()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(8000, "<i2").tobytes())
    with pytest.raises(UserError, match="resample"):
        sc.load_speech_commands(spec(tmp_path), seed=0)
