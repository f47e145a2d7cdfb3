"""When a process decides it is one of several, from flags and environment."""

import pytest

from jaxcompress.errors import ConfigError
from jaxcompress.train.distributed import DistributedSettings, resolve


def test_single_process_by_default():
    assert resolve("auto", environ={}) is None
    assert resolve("off", "h:1", 2, 0, environ={}) is None


def test_flags_win_over_environment():
    env = {"JAXCOMPRESS_COORDINATOR_ADDRESS": "a:1", "JAXCOMPRESS_NUM_PROCESSES": "4",
           "JAXCOMPRESS_PROCESS_ID": "3"}
    assert resolve("auto", environ=env) == DistributedSettings("a:1", 4, 3)
    assert resolve("auto", "b:2", 2, 1, environ=env) == DistributedSettings("b:2", 2, 1)


def test_standard_jax_variables_are_read():
    env = {"JAX_COORDINATOR_ADDRESS": "c:3", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}
    assert resolve("auto", environ=env) == DistributedSettings("c:3", 2, 0)


def test_detected_clusters_let_jax_fill_in_the_rest():
    assert resolve("auto", environ={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "16"}) == \
        DistributedSettings(None, None, None)
    assert resolve("auto", environ={"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}) is not None
    assert resolve("auto", environ={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is None
    assert resolve("on", environ={}) == DistributedSettings(None, None, None)


@pytest.mark.parametrize("args, env, message", [
    (("auto", "h:1", 2, 2), {}, "--process-id must be in [0, 2), got 2"),
    (("auto", None, 2, 0), {}, "needs all of --coordinator-address"),
    (("auto", None, None, None), {"JAXCOMPRESS_NUM_PROCESSES": "two"}, "must be an integer, got 'two'"),
    (("sometimes", None, None, None), {}, "--distributed must be one of auto, on, off"),
])
def test_bad_settings(args, env, message):
    with pytest.raises(ConfigError) as info:
        resolve(*args, environ=env)
    assert message in str(info.value)
