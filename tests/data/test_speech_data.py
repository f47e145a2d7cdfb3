"""Speech data: eSpeak NG synthesis with boundaries, log-mels, segment supervision, CTC utilities, records."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress import data as data_lib
from jaxcompress.speech import boundaries, ctc, espeak, features


def test_synthesis_gives_audio_and_tiling_phone_spans():
    out = espeak.synthesize("seven two", espeak.Voice("en", "m3", rate=160, pitch=40))
    assert out.audio.dtype == np.int16 and out.sample_rate == 22050
    assert 0.3 * out.sample_rate < out.audio.size < 3 * out.sample_rate
    assert np.abs(out.audio.astype(np.float64)).max() > 1000  # not silence
    starts = [p[1] for p in out.phones]
    ends = [p[2] for p in out.phones]
    assert starts == sorted(starts) and ends[-1] == out.audio.size
    assert all(e == s for e, s in zip(ends[:-1], starts[1:]))  # spans tile the utterance
    assert len(out.words) == 2
    (s0, e0), (s1, e1) = out.words
    assert 0 <= s0 < e0 <= s1 < e1 <= out.audio.size
    # a slower speaker takes longer to say the same words
    slow = espeak.synthesize("seven two", espeak.Voice("en", "m3", rate=100, pitch=40))
    assert slow.audio.size > 1.2 * out.audio.size


def test_bad_voices_are_refused():
    with pytest.raises(espeak.SynthesisError, match="unknown language"):
        espeak.Voice("xx-nope").validate()
    with pytest.raises(espeak.SynthesisError, match="rate must be an integer"):
        espeak.Voice("en", rate=5).validate()


def test_log_mel_of_a_tone_peaks_at_its_frequency():
    spec = features.FeatureSpec()
    t = np.arange(16000) / 16000
    for hz in (300.0, 1000.0, 3000.0):
        mel = features.log_mel(np.sin(2 * np.pi * hz * t), spec)
        assert mel.shape == (features.num_frames(16000, spec), 40) == (98, 40)
        # centre frequency of each mel band from the HTK mel scale, computed here independently
        edges = 700 * (10 ** (np.linspace(2595 * np.log10(1 + 20 / 700), 2595 * np.log10(1 + 7600 / 700), 42)
                              / 2595) - 1)
        peak = edges[1:-1][np.argmax(mel[50])]
        assert abs(np.log(peak / hz)) < 0.12, (hz, peak)


def test_segment_boundaries_and_pseudo_alpha():
    b = boundaries.frame_boundaries([0.05, 0.101, 0.101, -1.0], num_frames=10, frame_period=0.02)
    np.testing.assert_array_equal(b, [2, 5, 10])  # 0.05 s rounds to frame 2; duplicates merge; end added
    alpha = boundaries.pseudo_alpha(b, 10, total_frames=12)
    np.testing.assert_allclose(alpha, [1 / 2] * 2 + [1 / 3] * 3 + [1 / 5] * 5 + [0, 0], rtol=1e-6)
    assert alpha.sum() == pytest.approx(3.0)
    np.testing.assert_array_equal(boundaries.pad_boundaries(b, 5), [2, 5, 10, -1, -1])
    np.testing.assert_array_equal(boundaries.pad_boundaries(b, 2), [2, 10])  # the end is kept
    p, r, f = boundaries.boundary_f1(np.array([3, 9, 20]), np.array([2, 5, 10]), tolerance=1)
    assert (p, r) == (2 / 3, 2 / 3) and f == pytest.approx(2 / 3)


def _levenshtein(a, b):
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]


def test_edit_distance_and_greedy_decode_match_python():
    rng = np.random.default_rng(0)
    hyp = rng.integers(0, 3, (64, 7))
    ref = rng.integers(0, 3, (64, 5))
    hyp_len, ref_len = rng.integers(0, 8, 64), rng.integers(0, 6, 64)
    got = ctc.edit_distance(jnp.asarray(hyp), jnp.asarray(hyp_len), jnp.asarray(ref), jnp.asarray(ref_len))
    want = [_levenshtein(list(h[:m]), list(r[:n])) for h, m, r, n in zip(hyp, hyp_len, ref, ref_len)]
    np.testing.assert_array_equal(np.asarray(got), want)

    logits = rng.standard_normal((16, 9, 4))
    mask = np.arange(9)[None] < rng.integers(1, 10, 16)[:, None]
    ids, lengths = ctc.greedy_decode(jnp.asarray(logits), jnp.asarray(mask))
    for row in range(16):
        best = logits[row].argmax(-1)[mask[row]]
        merged = [int(k) - 1 for k, _ in itertools.groupby(best) if k != ctc.BLANK]
        assert int(lengths[row]) == len(merged)
        assert list(np.asarray(ids[row][:len(merged)])) == merged
        assert (np.asarray(ids[row][len(merged):]) == -1).all()


def test_ctc_loss_matches_brute_force_alignments():
    rng = np.random.default_rng(1)
    frames, classes = 5, 3  # blank + 2 labels
    logits = rng.standard_normal((1, frames, classes)).astype(np.float32)
    logp = jax.nn.log_softmax(logits[0], -1)
    labels = [1, 1]  # a repeat needs a blank in between

    def collapse(path):
        return [int(k) - 1 for k, _ in itertools.groupby(path) if k != ctc.BLANK]

    total = sum(np.exp(sum(float(logp[t, k]) for t, k in enumerate(path)))
                for path in itertools.product(range(classes), repeat=frames) if collapse(path) == labels)
    loss, feasible = ctc.ctc_loss(jnp.asarray(logits), jnp.ones((1, frames), bool),
                                  jnp.asarray([labels + [-1]]))
    assert bool(feasible[0]) and float(loss[0]) == pytest.approx(-np.log(total), rel=1e-4)
    # two frames cannot hold "1 blank 1": infeasible rows are zeroed and flagged
    short, ok = ctc.ctc_loss(jnp.asarray(logits), jnp.arange(frames)[None] < 2, jnp.asarray([labels + [-1]]))
    assert not bool(ok[0]) and float(short[0]) == 0.0


def test_tiny_digits_records():
    data_lib.prepare("speech_digits_tiny")
    split = data_lib.load_split("speech_digits_tiny", "train")
    rec = split.read(np.arange(len(split)))
    n, max_frames = rec["logmel"].shape[:2]
    assert n == 64 and max_frames == 240
    assert (rec["num_frames"] > 50).all() and (rec["num_frames"] <= max_frames).all()
    past = np.arange(max_frames)[None] >= rec["num_frames"][:, None]
    assert (rec["logmel"][past] == 0).all() and np.isfinite(rec["logmel"].astype(np.float32)).all()
    for i in range(n):
        ends = rec["segment_ends"][i][rec["segment_ends"][i] >= 0]
        assert (np.diff(ends) > 0).all()
        assert abs(ends[-1] - rec["num_frames"][i] / 100) < 0.03  # the last segment ends with the audio
        k = rec["num_tokens"][i]
        assert 2 <= k <= 4 and (rec["tokens"][i][:k] <= 9).all() and (rec["tokens"][i][k:] == -1).all()
        starts, word_ends = rec["word_starts"][i][:k], rec["word_ends"][i][:k]
        assert (starts < word_ends).all() and (word_ends[:-1] <= starts[1:] + 1e-6).all()
    assert len(set(rec["language"])) >= 3 and len(set(rec["speaker"])) >= 6
