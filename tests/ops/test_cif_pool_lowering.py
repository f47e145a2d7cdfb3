"""The Pallas path of cif_pool lowers for TPU and CUDA, and shards over a mesh.

Lowering is checked with ``jax.export`` on this CPU-only machine: the module
text must contain the backend's custom call (Mosaic ``tpu_custom_call`` on TPU,
the Triton call on CUDA). The mesh test runs in a subprocess because the
number of virtual CPU devices is fixed when JAX starts.

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332); Dong & Xu,
"CIF: Continuous Integrate-and-Fire for End-to-End Speech Recognition",
ICASSP 2020.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from jaxcompress.ops import _cif_pool_pallas, cif_pool

TRITON_CALL = "__gpu$xla.gpu.triton"
CUSTOM_CALLS = {"tpu": "tpu_custom_call", "cuda": TRITON_CALL}
# The Triton call carries no serialization-compatibility guarantee; exporting is
# only a lowering check here, so that guard is lifted.
DISABLED = [jax.export.DisabledSafetyCheck.custom_call(TRITON_CALL)]
SPECS = (
    jax.ShapeDtypeStruct((2, 50, 16), jnp.float32),
    jax.ShapeDtypeStruct((2, 50), jnp.float32),
    jax.ShapeDtypeStruct((2, 50), jnp.bool_),
)


def _export_text(fn, platform: str, specs=SPECS) -> str:
    exporter = jax.export.export(jax.jit(fn), platforms=[platform], disabled_checks=DISABLED)
    return exporter(*specs).mlir_module()


def _frames(impl):
    return lambda x, a, m: cif_pool(x, a, m, num_frames=32, implementation=impl).frames


def _grads(impl):
    def loss(x, a, m):
        return jnp.sum(_frames(impl)(x, a, m) ** 2)

    return jax.grad(loss, argnums=(0, 1))


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
@pytest.mark.parametrize("impl", ["pallas", "auto"])
def test_pallas_lowers_for_accelerators(platform, impl):
    call = CUSTOM_CALLS[platform]
    assert _export_text(_frames(impl), platform).count(call) == 1
    # Forward and backward kernels both appear in the gradient.
    assert _export_text(_grads(impl), platform).count(call) == 2


def test_auto_uses_xla_on_cpu():
    text = _export_text(_grads("auto"), "cpu")
    assert "tpu_custom_call" not in text and TRITON_CALL not in text
    assert "scatter" in text  # the segment_sum path


def test_pallas_lowers_with_bfloat16_and_odd_sizes():
    specs = (
        jax.ShapeDtypeStruct((3, 333, 200), jnp.bfloat16),
        jax.ShapeDtypeStruct((3, 333), jnp.bfloat16),
        jax.ShapeDtypeStruct((3, 333), jnp.bool_),
    )
    fn = lambda x, a, m: cif_pool(x, a, m, num_frames=129, implementation="pallas").frames
    for platform, call in CUSTOM_CALLS.items():
        assert call in _export_text(fn, platform, specs)


def test_tpu_blocks_respect_tiling():
    # The last two dims of every TPU block are multiples of (8, 128) or full.
    blocks = _cif_pool_pallas.TPU_BLOCKS
    assert blocks.bt % 8 == 0 and blocks.bs % 128 == 0 and blocks.bd % 128 == 0
    assert blocks.d_align % 128 == 0


_MESH_SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from jaxcompress.ops import cif_pool, cif_pool_sharded

    assert jax.device_count() == 8, jax.devices()
    mesh = jax.make_mesh((4, 2), ("data", "model"))  # Explicit axes (the default)
    rng = np.random.default_rng(0)
    b, s, d, t = 8, 40, 6, 32
    x = rng.normal(size=(b, s, d)).astype(np.float32)
    a = rng.uniform(size=(b, s)).astype(np.float32)
    m = np.arange(s)[None] < rng.integers(1, s + 1, b)[:, None]
    loss = lambda f: (lambda x, a: jnp.sum(f(x, a) ** 2))
    dense = lambda x, a: cif_pool(x, a, m, num_frames=t, implementation="dense").frames
    want = np.asarray(dense(x, a))
    want_g = [np.asarray(g) for g in jax.grad(loss(dense), argnums=(0, 1))(x, a)]
    result = {}
    with jax.set_mesh(mesh):
        put = lambda v: jax.device_put(v, NamedSharding(mesh, P("data")))
        xs, as_, ms = put(x), put(a), put(m)
        for impl in ["pallas", "xla"]:
            f = lambda x, a: cif_pool_sharded(
                x, a, ms, mesh=mesh, batch_axes="data", num_frames=t, implementation=impl
            ).frames
            y = jax.jit(f)(xs, as_)
            g = jax.jit(jax.grad(loss(f), argnums=(0, 1)))(xs, as_)
            result[impl] = dict(
                err=float(np.abs(np.asarray(y) - want).max()),
                grad_err=max(float(np.abs(np.asarray(u) - v).max()) for u, v in zip(g, want_g)),
                spec=str(y.sharding.spec),
            )
        try:
            cif_pool_sharded(xs, as_, ms, mesh=mesh, batch_axes="nope")
        except ValueError as e:
            result["bad_axis"] = str(e)
    print("RESULT" + json.dumps(result))
    """
)


def test_shard_map_on_eight_virtual_devices():
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    flag = "--xla_force_host_platform_device_count=8"
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", _MESH_SCRIPT], env=env, cwd=root,
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    result = json.loads(line[len("RESULT"):])
    for impl in ["pallas", "xla"]:
        assert result[impl]["err"] < 1e-5, result
        assert result[impl]["grad_err"] < 1e-4, result
        assert "data" in result[impl]["spec"], result
    assert "batch_axes must name axes of the mesh" in result["bad_axis"]
