"""Log-mel filterbank features at 100 frames per second (NumPy or jax.numpy).

``log_mel`` frames 16 kHz audio with a 25 ms Hann window every 10 ms (no
centre padding: frame ``t`` covers samples ``[t * hop, t * hop + win)``),
takes the power spectrum of a zero-padded ``n_fft``-point real FFT, applies
triangular filters equally spaced on the HTK mel scale and returns
``log(max(mel power, floor))``. The same code runs on NumPy arrays (dataset
generation) and on jax.numpy arrays (inside a model), chosen by ``xp``.

References: Davis & Mermelstein, "Comparison of parametric representations for
monosyllabic word recognition in continuously spoken sentences", IEEE TASSP
1980 (mel filterbanks); Young et al., "The HTK Book" (the mel scale
``2595 log10(1 + f / 700)``); 10 ms / 25 ms framing as in the wav2vec 2.0 and
HuBERT speech front ends of Chen, Meng, Lee, ICASSP 2023 (arXiv 2211.02332).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Log-mel settings (defaults: 16 kHz, 25 ms / 10 ms, 512-point FFT, 40 mels)."""

    sample_rate: int = 16000
    win_length: int = 400
    hop_length: int = 160
    n_fft: int = 512
    num_mels: int = 40
    fmin: float = 20.0
    fmax: float = 7600.0
    floor: float = 1e-6

    def validate(self) -> None:
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError(f"win_length must be in (0, n_fft={self.n_fft}]; got {self.win_length}")
        if self.hop_length < 1:
            raise ValueError(f"hop_length must be >= 1; got {self.hop_length}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2 = {self.sample_rate / 2}; "
                             f"got fmin={self.fmin}, fmax={self.fmax}")
        if self.num_mels < 1:
            raise ValueError(f"num_mels must be >= 1; got {self.num_mels}")

    @property
    def frame_rate(self) -> float:
        """Frames per second (100 for the defaults)."""
        return self.sample_rate / self.hop_length


def hz_to_mel(f: Any) -> Any:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m: Any) -> Any:
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(spec: FeatureSpec) -> np.ndarray:
    """Triangular filters ``[n_fft // 2 + 1, num_mels]`` (float32), peak 1, on FFT bin frequencies.

    Filter ``m`` rises linearly from centre ``m - 1`` to centre ``m`` and falls to
    centre ``m + 1``, with ``num_mels + 2`` centres equally spaced in mel between
    ``fmin`` and ``fmax``.
    """
    spec.validate()
    centres = mel_to_hz(np.linspace(hz_to_mel(spec.fmin), hz_to_mel(spec.fmax), spec.num_mels + 2))
    freqs = np.arange(spec.n_fft // 2 + 1) * spec.sample_rate / spec.n_fft
    lower, centre, upper = centres[:-2], centres[1:-1], centres[2:]
    rising = (freqs[:, None] - lower) / (centre - lower)
    falling = (upper - freqs[:, None]) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    bank.flags.writeable = False  # cached: shared by every call
    return bank


@functools.lru_cache(maxsize=16)
def _hann(length: int) -> np.ndarray:
    # Periodic Hann window (the DFT-even form used by speech toolkits).
    window = (0.5 - 0.5 * np.cos(2.0 * math.pi * np.arange(length) / length)).astype(np.float32)
    window.flags.writeable = False
    return window


def num_frames(num_samples: int, spec: FeatureSpec = FeatureSpec()) -> int:
    """Frames :func:`log_mel` returns for ``num_samples`` samples (0 if shorter than a window)."""
    if num_samples < spec.win_length:
        return 0
    return 1 + (num_samples - spec.win_length) // spec.hop_length


def log_mel(audio: Any, spec: FeatureSpec = FeatureSpec(), xp: Any = np) -> Any:
    """Log-mel features of one utterance.

    Args:
        audio: float [N] waveform at ``spec.sample_rate`` (any scale; int16 audio
            should be divided by 32768 first).
        spec: framing and filterbank settings.
        xp: ``numpy`` or ``jax.numpy``.

    Returns:
        float32 [T, num_mels] with ``T = 1 + (N - win_length) // hop_length``.

    Raises:
        ValueError: audio that is not 1-D or shorter than one window.

    References: Davis & Mermelstein, IEEE TASSP 1980; the HTK Book (mel scale).
    """
    spec.validate()
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D [samples]; got shape {tuple(audio.shape)}")
    t = num_frames(int(audio.shape[0]), spec)
    if t == 0:
        raise ValueError(f"audio has {audio.shape[0]} samples, fewer than one window ({spec.win_length}); "
                         f"nothing to featurise")
    index = np.arange(spec.win_length)[None, :] + spec.hop_length * np.arange(t)[:, None]
    frames = xp.asarray(audio, dtype=xp.float32)[index] * xp.asarray(_hann(spec.win_length))
    spectrum = xp.fft.rfft(frames, n=spec.n_fft, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = power @ xp.asarray(mel_filterbank(spec))
    return xp.log(xp.maximum(mel, spec.floor)).astype(xp.float32)


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) of float audio [N]."""
    from scipy.signal import resample_poly

    g = math.gcd(int(orig_rate), int(target_rate))
    return resample_poly(np.asarray(audio, np.float64), target_rate // g, orig_rate // g).astype(np.float32)
