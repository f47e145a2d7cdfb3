"""The prunable unit groups of the built-in models (see ``unit_groups.UnitGroup``)."""

from __future__ import annotations

from typing import Any

from jaxcompress.compress.paths import map_with_path
from jaxcompress.compress.unit_groups import UnitGroup, register_groups
from jaxcompress.data.text.tokenizer import SPECIAL_TOKENS
from jaxcompress.nn.albert import AlbertConfig
from jaxcompress.nn.cnn import CNNConfig
from jaxcompress.nn.mlp import MLPConfig

_FFN_IN = "ffn/intermediate/kernel"
_QUERY = "attention/query/kernel"
_WORDS = "encoder/embeddings/word/embedding"


@register_groups(MLPConfig)
def mlp_groups(model: MLPConfig, params: Any) -> list[UnitGroup]:
    """Hidden neuron ``j`` of layer ``i``: column ``j`` of ``hidden_i`` (kernel and bias)
    and row ``j`` of the next layer's kernel."""
    groups = []
    layers = [f"hidden_{i}" for i in range(len(model.hidden_sizes))] + ["logits"]
    for i, width in enumerate(model.hidden_sizes):
        members = ((f"{layers[i]}/kernel", 1, 1), (f"{layers[i]}/bias", 0, 1), (f"{layers[i + 1]}/kernel", 0, 1))
        groups.append(UnitGroup(f"hidden_{i}", width, members, f"model.hidden_sizes.{i}"))
    return groups


@register_groups(CNNConfig)
def cnn_groups(model: CNNConfig, params: Any) -> list[UnitGroup]:
    """Output channel ``c`` of ``conv_i``: kernel ``[..., c]``, bias ``[c]``, and the next
    layer's input channel ``c``. After the last conv the feature map ``[H, W, C]`` is
    flattened, so channel ``c`` owns every ``C``-th row of ``hidden`` (``repeat = H * W``)."""
    groups = []
    convs = [f"conv_{i}" for i in range(len(model.channels))]
    after = "hidden" if model.hidden_size else "logits"
    for i, width in enumerate(model.channels):
        members: list[tuple] = [(f"{convs[i]}/kernel", 3, 1), (f"{convs[i]}/bias", 0, 1)]
        if i + 1 < len(convs):
            members.append((f"{convs[i + 1]}/kernel", 2, 1))
        else:
            rows = params[after]["kernel"].shape[0]
            members.append((f"{after}/kernel", 0, 1, rows // width))
        groups.append(UnitGroup(f"conv_{i}", width, tuple(members), f"model.channels.{i}"))
    if model.hidden_size:
        groups.append(UnitGroup("hidden", model.hidden_size,
                                (("hidden/kernel", 1, 1), ("hidden/bias", 0, 1), ("logits/kernel", 0, 1)),
                                "model.hidden_size"))
    return groups


@register_groups(AlbertConfig)
def albert_groups(model: AlbertConfig, params: Any) -> list[UnitGroup]:
    """Feed-forward neurons and attention heads of ALBERT/BERT encoders.

    Neuron ``j`` of each FFN block: column ``j`` of ``ffn/intermediate`` (kernel
    ``[..., H, F]``, bias ``[..., F]``) and row ``j`` of ``ffn/output/kernel`` (``[..., F, H]``).

    Attention head ``h``: slice ``h`` of the query, key and value kernels
    (``[..., H, heads, d]``) and biases (``[..., heads, d]``) and of the output kernel
    (``[..., heads, d, H]``); the smaller model keeps the head width ``d``
    (``model.head_dim``).

    Vocabulary row ``t`` of a fine-tuned classifier: row ``t`` of the word embedding
    (special tokens always stay); the smaller model's tasks remap tokenizer ids
    through ``text.vocab_keep``, removed tokens becoming ``[UNK]``.

    Layers run under ``nn.scan`` with their parameters stacked on leading axes and one
    ``model.intermediate_size`` / ``model.num_heads`` for all of them, so a unit is
    neuron (head) ``j`` of every layer of the stack together (with ALBERT's full
    sharing, exactly one layer's). Importance adds up over the stacked layers.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    map_with_path(lambda path, leaf: shapes.__setitem__(path, tuple(leaf.shape)), params)
    groups = []
    for path in sorted(p for p in shapes if p.endswith(_FFN_IN)):
        block = path[: -len("intermediate/kernel")]
        ndim = len(shapes[path])
        members = ((path, ndim - 1, 1), (f"{block}intermediate/bias", ndim - 2, 1),
                   (f"{block}output/kernel", ndim - 2, 1))
        name = block.rstrip("/").replace("encoder/transformer/", "") or "ffn"
        groups.append(UnitGroup(name, model.intermediate_size, members, "model.intermediate_size"))
    head_dim = model.head_dim or model.hidden_size // model.num_heads
    for path in sorted(p for p in shapes if p.endswith(_QUERY)):
        block = path[: -len("query/kernel")]
        axis = len(shapes[path]) - 2  # the heads axis; the bias and output kernel have it one earlier
        members = tuple((f"{block}{part}/kernel", axis, 1) for part in ("query", "key", "value")) + tuple(
            (f"{block}{part}/bias", axis - 1, 1) for part in ("query", "key", "value")) + (
            (f"{block}output/kernel", axis - 1, 1),)
        name = block.rstrip("/").replace("encoder/transformer/", "")
        groups.append(UnitGroup(name, model.num_heads, members, "model.num_heads",
                                (("model.head_dim", head_dim),)))
    if _WORDS in shapes and "classifier" in params:
        # Vocabulary rows of a fine-tuned classifier (pretraining heads need every row):
        # the kept ids are recorded so its tasks map tokenizer ids to the new rows.
        groups.append(UnitGroup("vocab", model.vocab_size, ((_WORDS, 0, 1),), "model.vocab_size",
                                (("text.tokenizer_vocab_size", model.vocab_size),), kept_key="text.vocab_keep",
                                protected=tuple(range(len(SPECIAL_TOKENS)))))
    return groups
