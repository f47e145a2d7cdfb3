"""Once-for-all evaluation pieces: frozen encoding, probe fitting, scores, frame period and FLOPs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcompress import data as data_lib
from jaxcompress.nn.speech import SpeechEncoder, SpeechEncoderConfig
from jaxcompress.nn.transformer import layer_stack
from jaxcompress.speech.batching import model_inputs
from jaxcompress.ssl import ofa_eval
from jaxcompress.ssl.ofa_probe import PROBE_TARGETS
from jaxcompress.ssl.probe import HeadFit

SMALL = SpeechEncoderConfig(frontend_size=16, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)


def test_scores():
    keyword, digits = PROBE_TARGETS["keyword"], PROBE_TARGETS["digits"]
    assert ofa_eval.score(keyword, {"accuracy": np.array([1.0, 0.0, 1.0, 1.0])}) == 0.75
    # corpus error rate: total edits over total reference length, not the mean of ratios
    stats = {"edits": np.array([1.0, 0.0]), "ref_length": np.array([1.0, 3.0])}
    assert ofa_eval.score(digits, stats) == 0.25


def test_frame_period_is_the_ratio_of_total_frames():
    assert ofa_eval.frame_period_ms(np.array([50, 100]), np.array([50, 100])) == 20.0
    assert ofa_eval.frame_period_ms(np.array([40, 80]), np.array([10, 20])) == 80.0
    assert ofa_eval.frame_period_ms(np.array([10]), np.array([0])) == 200.0  # no division by zero


@pytest.mark.parametrize("length", [8, 48])
def test_transformer_flops_match_xla_cost_analysis(length):
    """The analytic count covers the matmuls XLA counts for one layer (XLA adds softmax/norm elementwise work)."""
    cfg = SpeechEncoderConfig(hidden_size=64, num_layers=1, num_heads=4, intermediate_size=128)
    stack = layer_stack(cfg.stack_spec(), True)
    x, mask = jnp.zeros((1, length, 64)), jnp.ones((1, length), bool)
    params = stack.init(jax.random.key(0), x, mask)
    cost = jax.jit(stack.apply).lower(params, x, mask).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    analytic = ofa_eval.transformer_flops(np.array([length]), cfg)
    assert 1.0 <= cost["flops"] / analytic < 1.25
    # two layers cost twice one; the mean is over utterances
    two = SpeechEncoderConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128)
    assert ofa_eval.transformer_flops(np.array([length, length]), two) == pytest.approx(2 * analytic)


@pytest.fixture(scope="module")
def digits_tiny():
    data_lib.prepare("speech_digits_tiny")
    return data_lib.load_split("speech_digits_tiny", "validation")


def test_encode_records_lengths_follow_cif(digits_tiny):
    encoder = SpeechEncoder(SMALL, deterministic=True)
    raw = digits_tiny.read(np.arange(4))
    batch = model_inputs(raw)
    params = encoder.init(jax.random.key(0), batch["logmel"], batch["mask"], 0.0)["params"]
    fields = ("speaker", "tokens")
    at0 = ofa_eval.encode_records(SMALL, params, digits_tiny, 0.0, fields, batch_size=16)
    at1 = ofa_eval.encode_records(SMALL, params, digits_tiny, 1.0, fields, batch_size=16)
    every = digits_tiny.read(np.arange(len(digits_tiny)))
    frames50 = (every["num_frames"] + 1) // 2
    np.testing.assert_array_equal(at0["frames50"], frames50)
    np.testing.assert_array_equal(at0["lengths"], frames50)  # lambda 0: every alpha is 1, identity
    np.testing.assert_array_equal(at0["speaker"], every["speaker"])
    np.testing.assert_array_equal(at0["tokens"], every["tokens"])
    # lambda 1: the learned alpha; at inference the tail is kept when it holds >= half a frame
    mass = at1["alpha_sum"].astype(np.float64)
    whole = np.floor(mass)
    expected = np.maximum(whole + (mass - whole >= 0.5), 1)
    clear = np.abs(mass - whole - 0.5) > 1e-3
    np.testing.assert_array_equal(at1["lengths"][clear], expected[clear])
    assert (at1["lengths"] < frames50).all()
    # pooled = masked mean of the compressed frames; hidden is trimmed to the longest output
    assert at1["hidden"].shape[1] == at1["lengths"].max()
    np.testing.assert_array_equal(at1["mask"].sum(1), at1["lengths"])
    m = at1["mask"][..., None]
    np.testing.assert_allclose(at1["pooled"], (at1["hidden"] * m).sum(1) / m.sum(1), rtol=2e-5, atol=1e-6)
    utt = ofa_eval.for_target(at1, PROBE_TARGETS["speaker"])
    seq = ofa_eval.for_target(at1, PROBE_TARGETS["digits"])
    assert utt.hidden.shape == (len(digits_tiny), 1, 16) and utt.mask.all()
    assert seq.hidden.shape == at1["hidden"].shape and seq.labels.shape == every["tokens"].shape
    one = ofa_eval.encode_split(SMALL, params, digits_tiny, 1.0, PROBE_TARGETS["digits"], batch_size=16)
    np.testing.assert_array_equal(one.lengths, at1["lengths"])


def _clusters(rng, n, classes, dim=8):
    labels = rng.integers(0, classes, n)
    centres = 3.0 * np.eye(classes, dim)
    hidden = centres[labels] + 0.3 * rng.standard_normal((n, dim))
    return ofa_eval.Encoded(hidden[:, None].astype(np.float32), np.ones((n, 1), bool), labels.astype(np.int32),
                            np.ones(n, np.int32), np.ones(n, np.int32), np.ones(n, np.float32))


def test_fit_probe_separates_clusters():
    rng = np.random.default_rng(0)
    train, val, test = (_clusters(rng, n, 4) for n in (256, 64, 64))
    fit = ofa_eval.fit_probe(PROBE_TARGETS["keyword"], 4, train, val, test,
                             HeadFit(steps=60, learning_rate=3e-2, eval_every=20))
    assert fit["test"] >= 0.95 and fit["validation"] >= 0.95 and fit["best_step"] > 0


def _ctc_data(rng, n, vocab=3, length=2):
    """Frames spell the labels: one frame per label (one-hot), a silent frame between labels."""
    labels = rng.integers(0, vocab, (n, length))
    frames = 2 * length
    hidden = np.zeros((n, frames, vocab + 1), np.float32)
    hidden[:, :, vocab] = 1.0  # silence
    for j in range(length):
        hidden[np.arange(n), 2 * j, labels[:, j]] = 1.0
        hidden[np.arange(n), 2 * j, vocab] = 0.0
    hidden += 0.1 * rng.standard_normal(hidden.shape).astype(np.float32)
    padded = np.full((n, 4), -1, np.int32)
    padded[:, :length] = labels
    return ofa_eval.Encoded(hidden, np.ones((n, frames), bool), padded, np.full(n, frames),
                            np.full(n, frames), np.ones(n, np.float32))


def test_fit_probe_learns_ctc_transcripts():
    rng = np.random.default_rng(1)
    train, val, test = (_ctc_data(rng, n) for n in (256, 64, 64))
    fit = ofa_eval.fit_probe(PROBE_TARGETS["digits"], 3, train, val, test,
                             HeadFit(steps=150, learning_rate=5e-2, eval_every=50))
    assert fit["test"] <= 0.05, fit
