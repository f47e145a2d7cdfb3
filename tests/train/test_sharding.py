"""Meshes from config, logical-axis shardings, and their error messages."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from jaxcompress.errors import MeshError
from jaxcompress.nn import MLPClassifier
from jaxcompress.train.config import DEFAULT_LOGICAL_RULES, MeshConfig
from jaxcompress.train.sharding import build_mesh, fit_spec, logical_shardings, mesh_shape


def test_there_are_eight_virtual_devices():
    assert jax.device_count() == 8


@pytest.mark.parametrize("cfg, shape", [
    (MeshConfig(), (8, 1, 1)),
    (MeshConfig(fsdp=2, tensor=2), (2, 2, 2)),
    (MeshConfig(data=1, fsdp=8), (1, 8, 1)),
    (MeshConfig(data=4, fsdp=1, tensor=2), (4, 1, 2)),
])
def test_mesh_shapes(cfg, shape):
    mesh = build_mesh(cfg)
    assert tuple(mesh.shape.values()) == shape
    assert mesh.axis_names == ("data", "fsdp", "tensor")
    assert all(t == AxisType.Auto for t in mesh.axis_types)


@pytest.mark.parametrize("cfg, message", [
    (MeshConfig(fsdp=3), "mesh.fsdp x mesh.tensor = 3 x 1 = 3 does not divide the 8 devices"),
    (MeshConfig(data=2, fsdp=2), "= 4 but there are 8 devices"),
    (MeshConfig(data=16), "= 16 but there are 8 devices"),
])
def test_mesh_errors_name_the_sizes(cfg, message):
    with pytest.raises(MeshError) as info:
        build_mesh(cfg)
    assert message in str(info.value)


def test_mesh_on_one_device():
    mesh = build_mesh(MeshConfig(), devices=jax.devices()[:1])
    assert mesh_shape(MeshConfig(), 1) == (1, 1, 1) and mesh.size == 1


def test_fit_spec_replicates_dimensions_that_do_not_divide():
    mesh = build_mesh(MeshConfig(data=2, fsdp=1, tensor=4))
    assert fit_spec(P("tensor", None), (8, 3), mesh) == P("tensor", None)
    assert fit_spec(P(None, "tensor"), (8, 10), mesh) == P(None, None)
    assert fit_spec(P(("data", "tensor")), (16,), mesh) == P(("data", "tensor"))
    assert fit_spec(P(("data", "tensor")), (12,), mesh) == P(None)


def test_mlp_params_shard_by_logical_rules():
    mesh = build_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    model = MLPClassifier(hidden_sizes=(32, 16), num_classes=10)
    x = jnp.zeros((4, 8, 8, 1))
    with jax.set_mesh(mesh), nn.logical_axis_rules(DEFAULT_LOGICAL_RULES):
        abstract = jax.eval_shape(lambda k: model.init(k, x)["params"], jax.random.key(0))
    shardings = logical_shardings(abstract, mesh, DEFAULT_LOGICAL_RULES)
    assert shardings["hidden_0"]["kernel"].spec == P("fsdp", "tensor")  # (embed, mlp)
    assert shardings["hidden_1"]["kernel"].spec == P("tensor", "fsdp")  # (mlp, embed)
    assert shardings["hidden_0"]["bias"].spec == P("tensor")
    assert shardings["logits"]["kernel"].spec == P("fsdp", None)  # classes replicated
