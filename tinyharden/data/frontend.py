"""The MFCC front end of MLPerf Tiny's keyword-spotting DS-CNN, in TensorFlow.

It reproduces `get_preprocess_audio_func` of mlcommons/tiny
(benchmark/training/keyword_spotting/get_dataset.py, feature_type "mfcc") for clean clips:
divide the clip by its largest sample (`tf.reduce_max`, signed, as MLPerf does), pad/trim
to 1 s at 16 kHz, `tf.signal.stft` with a 480-sample (30 ms) Hann window, a 320-sample
(20 ms) step and `fft_length=None` (= 512, the next power of two), magnitude, 40 mel bins
from 20 to 4000 Hz, `log(mel + 1e-6)`, `tf.signal.mfccs_from_log_mel_spectrograms`, first
10 coefficients -> (49, 10, 1). MLPerf's fixed 2-sample pad-and-slice "time shift" is the
identity and is left out.

Because it is plain TensorFlow, `mfcc` is differentiable with respect to the waveform, so
attacks can work on raw audio. The peak normalization makes the features independent of
the clip's loudness.

The int8 input quantization of the reference model (kws_ref_model.tflite) is hard-coded
below; tests/test_speech_commands.py checks it against the tflite file. Importing this
module does not import TensorFlow; `mfcc` does.
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000  # Hz
CLIP_SAMPLES = 16000  # 1 s
WINDOW_SAMPLES = 480  # 30 ms
STRIDE_SAMPLES = 320  # 20 ms
FFT_LENGTH = 512  # what tf.signal.stft picks for fft_length=None and a 480-sample frame
NUM_MEL_BINS = 40
MEL_LOW_HZ, MEL_HIGH_HZ = 20.0, 4000.0
LOG_OFFSET = 1e-6
NUM_COEFFICIENTS = 10
NUM_FRAMES = 1 + (CLIP_SAMPLES - WINDOW_SAMPLES) // STRIDE_SAMPLES  # 49
FEATURE_SHAPE = (NUM_FRAMES, NUM_COEFFICIENTS, 1)

# Input quantization of MLPerf Tiny's kws_ref_model.tflite: q = round(x / scale) + zero_point.
INPUT_SCALE = 0.5847029089927673  # feature units per int8 step (float32 0.5847029 as stored)
INPUT_ZERO_POINT = 83
# Features the int8 model can represent; the dataset clips its features to this range.
# The lower end (-123.37) sits just above the c0 of an all-zero frame (log(1e-6) in every mel bin).
FEATURE_RANGE = ((-128 - INPUT_ZERO_POINT) * INPUT_SCALE, (127 - INPUT_ZERO_POINT) * INPUT_SCALE)

# Bump when the numbers `mfcc` produces change, so cached features are rebuilt.
FRONTEND_VERSION = "mlperf-tiny-kws-mfcc-1"


def log_mel(waveform):
    """MLPerf Tiny KWS log-mel spectrogram of a batch of clips: [N, 49, 40] float32 tf.Tensor.

    The stage before the DCT of `mfcc` (peak normalization, 30 ms / 20 ms Hann STFT,
    40 mel bins 20-4000 Hz, log(mel + 1e-6)); differentiable; takes what `mfcc` takes.
    """
    from tinyharden._tf import tf

    w = tf.convert_to_tensor(waveform)
    if w.dtype != tf.float32:
        w = tf.cast(w, tf.float32)
    if w.shape.rank == 3 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.shape.rank != 2:
        raise ValueError(f"mfcc expects waveforms of shape [N, samples] or [N, samples, 1], got {w.shape}")
    w = w[:, :CLIP_SAMPLES]
    # MLPerf divides by the signed maximum before padding. A clip with no positive sample
    # falls back to its absolute peak (same magnitudes) and digital silence to 1e-9 so it
    # stays finite instead of NaN.
    peak = tf.reduce_max(w, axis=-1, keepdims=True)
    peak = tf.where(peak > 0, peak, tf.reduce_max(tf.abs(w), axis=-1, keepdims=True))
    w = w / tf.maximum(peak, 1e-9)
    pad = CLIP_SAMPLES - tf.shape(w)[-1]
    w = tf.pad(w, [[0, 0], [0, pad]])
    w = tf.ensure_shape(w, [None, CLIP_SAMPLES])
    stft = tf.signal.stft(w, frame_length=WINDOW_SAMPLES, frame_step=STRIDE_SAMPLES,
                          fft_length=FFT_LENGTH, window_fn=tf.signal.hann_window)
    spectrogram = tf.abs(stft)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        NUM_MEL_BINS, FFT_LENGTH // 2 + 1, SAMPLE_RATE, MEL_LOW_HZ, MEL_HIGH_HZ)
    return tf.math.log(tf.tensordot(spectrogram, mel_matrix, 1) + LOG_OFFSET)


def mfcc(waveform, *, clip: bool = True):
    """MLPerf Tiny KWS MFCCs of a batch of clips, as a differentiable tf.Tensor.

    waveform: float32 tf.Tensor or array, shape [N, samples] or [N, samples, 1], 16 kHz,
        samples in [-1, 1] (any scale works: each clip is peak-normalized first). Longer
        clips are trimmed and shorter ones zero-padded to 16000 samples, as MLPerf does.
    clip: clip to FEATURE_RANGE, as the dataset's features are (the gradient is zero
        outside it, like the int8 model's view of the input).
    Returns [N, 49, 10, 1] float32, the dataset's feature units.
    """
    from tinyharden._tf import tf

    coeffs = tf.signal.mfccs_from_log_mel_spectrograms(log_mel(waveform))[..., :NUM_COEFFICIENTS]
    if clip:
        coeffs = tf.clip_by_value(coeffs, *FEATURE_RANGE)
    return coeffs[..., None]


def mfcc_numpy(waveforms: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """`mfcc` over many clips in batches, as a float32 numpy array [N, 49, 10, 1].

    waveforms: [N, samples]; int16 PCM is scaled by 1/32768, floats are used as they are.
    """
    waveforms = np.asarray(waveforms)
    scale = 1.0 / 32768.0 if waveforms.dtype == np.int16 else 1.0
    out = np.empty((len(waveforms), *FEATURE_SHAPE), np.float32)
    for start in range(0, len(waveforms), batch_size):
        chunk = waveforms[start:start + batch_size].astype(np.float32) * np.float32(scale)
        out[start:start + len(chunk)] = mfcc(chunk).numpy()
    return out


def quantize(features: np.ndarray) -> np.ndarray:
    """Features -> the reference model's int8 input (round to nearest, saturate)."""
    q = np.round(np.asarray(features, np.float32) / np.float32(INPUT_SCALE)) + INPUT_ZERO_POINT
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray) -> np.ndarray:
    """int8 model input -> features, float32."""
    return ((np.asarray(q, np.float32) - INPUT_ZERO_POINT) * np.float32(INPUT_SCALE)).astype(np.float32)
