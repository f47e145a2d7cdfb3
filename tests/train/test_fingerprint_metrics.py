"""The params fingerprint, metric logs and the progress display."""

import hashlib
import io
import json

import jax.numpy as jnp
import numpy as np

from jaxcompress.train.fingerprint import count_params, params_sha256
from jaxcompress.train.metrics import MetricsWriter, Progress


def _manual_digest(items):
    digest = hashlib.sha256()
    for path, array in items:
        digest.update(path.encode())
        digest.update(f"|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def test_fingerprint_matches_a_hand_computed_digest_in_sorted_key_order():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, 2], np.int32)
    params = {"z": {"kernel": jnp.asarray(a)}, "a": jnp.asarray(b)}
    expected = _manual_digest([("['a']", b), ("['z']['kernel']", a)])
    assert params_sha256(params) == expected
    # Insertion order does not matter; any changed bit does.
    assert params_sha256({"a": jnp.asarray(b), "z": {"kernel": jnp.asarray(a)}}) == expected
    a2 = a.copy()
    a2[0, 0] = np.nextafter(a2[0, 0], 1)
    assert params_sha256({"z": {"kernel": jnp.asarray(a2)}, "a": jnp.asarray(b)}) != expected
    assert count_params(params) == 8


def test_metrics_writer_drops_steps_redone_after_resume(tmp_path):
    writer = MetricsWriter(tmp_path, resume_step=0, enabled=True)
    for step in (10, 20, 30):
        writer.write(step, "train", {"loss": 1.0 / step})
    writer.close()
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 40, "spl')  # a line cut short by a kill
    writer = MetricsWriter(tmp_path, resume_step=20, enabled=True)
    writer.write(30, "train", {"loss": 0.5, "bad": float("nan")})
    writer.close()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30]
    assert records[-1]["loss"] == 0.5 and records[-1]["bad"] == "nan"
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_disabled_writer_writes_nothing(tmp_path):
    writer = MetricsWriter(tmp_path, resume_step=0, enabled=False)
    writer.write(1, "train", {"loss": 1.0})
    writer.close()
    assert not list(tmp_path.iterdir())


def test_progress_lines_when_not_a_terminal_and_silence_when_quiet():
    stream = io.StringIO()
    progress = Progress(total=100, initial=0, quiet=False, stream=stream)
    progress.update(50, {"loss": 0.25}, 1234.0)
    progress.message("step 50: eval accuracy 0.9")
    progress.close()
    text = stream.getvalue()
    assert "step 50/100" in text and "loss 0.2500" in text and "1,234 ex/s" in text and "eta 0:" in text
    assert "eval accuracy" in text
    quiet = io.StringIO()
    progress = Progress(total=100, initial=0, quiet=True, stream=quiet)
    progress.update(50, {"loss": 0.25}, 1.0)
    progress.message("hello")
    assert quiet.getvalue() == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_shows_loss_rate_and_eta():
    stream = _Terminal()
    progress = Progress(total=100, initial=10, quiet=False, stream=stream)
    progress.update(60, {"loss": 0.125}, 999.0)
    progress.close()
    text = stream.getvalue()
    assert "60/100" in text and "loss=0.1250" in text and "ex_per_s=999" in text and "<" in text  # tqdm's ETA
