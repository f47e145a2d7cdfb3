"""Mel cepstral distortion and a Griffin-Lim vocoder for log-mel spectrograms (NumPy).

MCD: mel cepstra are the cepstrum of the log mel *amplitude* ``L_k = 0.5 * ln(mel
power)`` sampled at the ``M`` mel bins, ``c_n = (1/M) sum_k L_k cos(pi n (k + 1/2) / M)``
(the Fourier coefficients of an even log spectrum, ``L(w) = c_0 + 2 sum_n c_n cos(n w)``,
the scale of SPTK's mel-cepstra); coefficients 1..``order`` (c0, the energy,
excluded) of two time-aligned spectrograms give per frame
``(10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2)`` dB, averaged over frames.

Griffin-Lim: the linear magnitude is recovered from mel power by non-negative
least squares through the filterbank's pseudo-inverse (clipped at zero), then
the phase is iterated between STFT and overlap-add inverse STFT (Hann window,
the framing of :func:`~jaxcompress.speech.features.log_mel`, no centre padding).

References: Kubichek, "Mel-cepstral distance measure for objective speech
quality assessment", PACRIM 1993; Griffin & Lim, "Signal estimation from
modified short-time Fourier transform", IEEE TASSP 1984.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.fft import dct

from jaxcompress.speech.features import FeatureSpec, _hann, mel_filterbank

MCD_ORDER = 13
_DB = 10.0 / math.log(10.0)


def mel_cepstrum(log_mel_power: np.ndarray, order: int = MCD_ORDER) -> np.ndarray:
    """float64 [T, order + 1] cepstra c0..c_order of natural-log mel power [T, M]."""
    bins = np.shape(log_mel_power)[-1]
    # scipy's unnormalised DCT-II is 2 sum_k x_k cos(pi n (k + 1/2) / M).
    return dct(0.5 * np.asarray(log_mel_power, np.float64), type=2, axis=-1)[..., :order + 1] / (2 * bins)


def mel_cepstral_distortion(predicted: np.ndarray, reference: np.ndarray, order: int = MCD_ORDER) -> float:
    """Mean MCD (dB) over the frames of two aligned log-mel spectrograms [T, M] (c0 excluded)."""
    if predicted.shape != reference.shape:
        raise ValueError(f"MCD needs aligned spectrograms; got {predicted.shape} and {reference.shape}")
    diff = mel_cepstrum(predicted, order)[:, 1:] - mel_cepstrum(reference, order)[:, 1:]
    return float(np.mean(_DB * np.sqrt(2.0 * np.sum(diff**2, axis=-1))))


def _stft(audio: np.ndarray, spec: FeatureSpec, frames: int) -> np.ndarray:
    index = np.arange(spec.win_length)[None, :] + spec.hop_length * np.arange(frames)[:, None]
    return np.fft.rfft(audio[index] * _hann(spec.win_length), n=spec.n_fft, axis=-1)


def _istft(spectrum: np.ndarray, spec: FeatureSpec, num_samples: int) -> np.ndarray:
    window = _hann(spec.win_length).astype(np.float64)
    frames = np.fft.irfft(spectrum, n=spec.n_fft, axis=-1)[:, :spec.win_length] * window
    out = np.zeros(num_samples)
    norm = np.zeros(num_samples)
    for t, frame in enumerate(frames):
        start = t * spec.hop_length
        out[start:start + spec.win_length] += frame
        norm[start:start + spec.win_length] += window**2
    return out / np.maximum(norm, 1e-8)


def griffin_lim(log_mel_power: np.ndarray, spec: FeatureSpec, iterations: int = 32, seed: int = 0) -> np.ndarray:
    """float32 [N] waveform from natural-log mel power [T, M] (``N = (T - 1) * hop + win``)."""
    power = np.exp(np.asarray(log_mel_power, np.float64))
    bank = mel_filterbank(spec).astype(np.float64)  # [F, M]
    magnitude = np.sqrt(np.maximum(power @ np.linalg.pinv(bank), 0.0))  # [T, F]
    frames = magnitude.shape[0]
    num_samples = (frames - 1) * spec.hop_length + spec.win_length
    phase = np.exp(2j * np.pi * np.random.default_rng(seed).random(magnitude.shape))
    audio = _istft(magnitude * phase, spec, num_samples)
    for _ in range(iterations):
        spectrum = _stft(audio, spec, frames)
        audio = _istft(magnitude * np.exp(1j * np.angle(spectrum)), spec, num_samples)
    peak = float(np.max(np.abs(audio))) or 1.0
    return (0.9 * audio / peak).astype(np.float32)
