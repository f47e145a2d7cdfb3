"""TTS transfer pieces: phone segments and durations, MCD, Griffin-Lim, length regulator, parameter transfer."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress.data.builders import tts as tts_data
from jaxcompress.errors import CheckpointError, UserError
from jaxcompress.nn.tts import length_regulate
from jaxcompress.speech.features import FeatureSpec, log_mel
from jaxcompress.speech.vocoder import griffin_lim, mel_cepstral_distortion
from jaxcompress.tasks.tts import mcd_from_log_mel, transfer_params


def test_phone_segments_merge_modifiers_and_inner_empty_events():
    # eSpeak NG's IPA events for Russian "при..." split the palatalisation off and insert an empty event.
    events = [("p", 100, 110, 0), ("", 110, 120, 0), ("r", 120, 130, 0), ("ʲ", 130, 140, 0), ("ˈi", 140, 150, 0),
              ("", 150, 160, 0), ("", 160, 160, 0)]
    assert tts_data.phone_segments(events, 175) == [("sil", 0, 100), ("p", 100, 120), ("rʲ", 120, 140),
                                                    ("i", 140, 150), ("sil", 150, 175)]
    assert tts_data.phone_segments([("a", 0, 50, 0)], 60) == [("a", 0, 60)]


def test_frame_durations_sum_to_the_frames():
    segments = [("sil", 0, 300), ("a", 300, 1000), ("b", 1000, 1010), ("sil", 1010, 5000)]
    # boundaries round(300/256)=1, round(1000/256)=4, round(1010/256)=4, last = frames.
    assert tts_data.frame_durations(segments, 16, 256) == [1, 3, 0, 12]


def test_unknown_tts_language_is_refused_with_the_list():
    with pytest.raises(UserError, match=r"'de' is not available; allowed: en \(English\), fi"):
        tts_data.dataset_name("de")
    assert tts_data.dataset_name("sw") == "tts_sw"


def _slow_mcd(a, b, order=13):
    """MCD by explicit cosine sums (an independent reference for the DCT-based code)."""
    m = a.shape[1]
    total = 0.0
    for t in range(a.shape[0]):
        acc = 0.0
        for d in range(1, order + 1):
            c = sum(0.5 * (a[t, k] - b[t, k]) * math.cos(math.pi * d * (k + 0.5) / m) for k in range(m))
            acc += (c / m) ** 2
        total += 10.0 / math.log(10.0) * math.sqrt(2.0 * acc)
    return total / a.shape[0]


def test_mcd_matches_a_slow_reference_and_the_jax_version():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 6, 20)), rng.normal(size=(2, 6, 20))
    assert mel_cepstral_distortion(a[0], b[0]) == pytest.approx(_slow_mcd(a[0], b[0]), rel=1e-9)
    assert mel_cepstral_distortion(a[0], a[0]) == 0.0
    # A constant offset moves only c0, which MCD excludes.
    assert mel_cepstral_distortion(a[0] + 3.0, a[0]) == pytest.approx(0.0, abs=1e-9)
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], np.float32)
    got = np.asarray(mcd_from_log_mel(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), jnp.asarray(mask)))
    assert got[0] == pytest.approx(_slow_mcd(a[0], b[0]), rel=1e-4)
    assert got[1] == pytest.approx(_slow_mcd(a[1, :3], b[1, :3]), rel=1e-4)


def test_griffin_lim_iterations_bring_the_mel_back():
    spec = FeatureSpec(sample_rate=8000, win_length=256, hop_length=64, n_fft=256, num_mels=40, fmin=0.0,
                       fmax=4000.0, floor=1e-8)
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 8000
    noise = np.convolve(rng.normal(size=t.size), np.ones(4) / 4, "same")
    audio = (0.3 * np.sin(2 * np.pi * (200 + 400 * t) * t) * noise + 0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    mel = log_mel(audio, spec)
    # Levels differ by the peak normalisation (c0, excluded); the spectral shape must come back, and
    # the phase iterations must improve on the random-phase start.
    distortion = [mel_cepstral_distortion(log_mel(griffin_lim(mel, spec, iterations=n), spec)[5:-5], mel[5:-5])
                  for n in (0, 16)]
    assert distortion[1] < 0.8 * distortion[0]
    assert distortion[1] < 1.5


def test_length_regulator_matches_numpy_repeat():
    hidden = np.random.default_rng(1).normal(size=(2, 4, 3)).astype(np.float32)
    durations = np.array([[2, 0, 3, 1], [1, 1, 0, 0]])
    frames, mask = length_regulate(jnp.asarray(hidden), jnp.asarray(durations), 8)
    for b in range(2):
        expected = np.repeat(hidden[b], durations[b], axis=0)
        np.testing.assert_allclose(np.asarray(frames[b, :len(expected)]), expected)
        assert np.all(np.asarray(frames[b, len(expected):]) == 0)
        assert mask[b].sum() == durations[b].sum()


def _tree(rows, kind="ids", seed=0):
    """A boxed parameter tree shaped like the model's input and output layers (no model init: fast)."""
    rng = np.random.default_rng(seed)
    first = ({"phone_embedding": {"embedding": rng.normal(size=(rows, 4))}} if kind == "ids"
             else {"feature_input": {"kernel": rng.normal(size=(25, 4))}})
    tree = {**first, "mel_out": {"kernel": rng.normal(size=(4, 3)), "bias": rng.normal(size=(3,))}}
    return jax.tree.map(lambda x: nn.Partitioned(jnp.asarray(x, jnp.float32), names=(None,) * x.ndim), tree)


def test_transfer_params_grows_the_embedding_and_copies_the_rest():
    source = nn.unbox(_tree(6, seed=1))
    fresh = _tree(9, seed=2)
    moved = transfer_params(fresh, source, "test")
    assert isinstance(moved["phone_embedding"]["embedding"], nn.Partitioned)  # still sharded like a fresh init
    moved = nn.unbox(moved)
    table = np.asarray(moved["phone_embedding"]["embedding"])
    np.testing.assert_array_equal(table[:6], source["phone_embedding"]["embedding"])
    np.testing.assert_array_equal(table[6:], nn.unbox(fresh)["phone_embedding"]["embedding"][6:])
    np.testing.assert_array_equal(moved["mel_out"]["kernel"], source["mel_out"]["kernel"])
    with pytest.raises(CheckpointError, match="feature_input"):
        transfer_params(_tree(6, "features"), source, "test")
    with pytest.raises(CheckpointError, match=r"shape \(6, 4\), expected \(5, 4\)"):
        transfer_params(_tree(5), source, "test")  # a table never shrinks


def test_symbol_lookup_maps_then_validates():
    from jaxcompress.errors import DataError
    from jaxcompress.tasks.tts import symbol_lookup

    lookup, size = symbol_lookup(["a", "o", "x"], {"o": "a"}, ("x", "a"), "tts_bg")
    np.testing.assert_array_equal(lookup, [1, 1, 0])  # mapped o reuses a's trained row: no new rows
    assert size == 2
    assert symbol_lookup(["b", "a"], {}, (), "tts_bg")[0].tolist() == [0, 1]  # default: the dataset's own table
    with pytest.raises(DataError, match="missing from config key 'model.symbols': o q"):
        symbol_lookup(["a", "q", "o"], {}, ("a",), "tts_bg")


def test_render_real_utterances_with_exact_durations():
    pytest.importorskip("espeakng_loader")
    from jaxcompress.speech.espeak import Engine

    texts = tts_data.plan("bg", (("train", 2), ("test", 2)))
    assert not set(texts["train"]) & set(texts["test"])  # disjoint splits
    assert tts_data.plan("bg", (("train", 2), ("test", 2))) == texts  # deterministic
    with Engine(1, ipa=True) as engine:
        [u] = tts_data.render(["здравей"], "bg", engine)
    assert u.mel.shape[1] == 80 and sum(u.durations) == u.mel.shape[0]
    assert [p for p in u.phones if p != "sil"] == ["z", "d", "r", "a", "v", "e", "j"]
