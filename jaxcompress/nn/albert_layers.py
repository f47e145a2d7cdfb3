"""The ALBERT/BERT encoder as a function of its parameters, layer by layer, from word vectors.

:class:`~jaxcompress.nn.albert.AlbertEncoder` scans its layers and starts from
token ids. Layer-wise knowledge transfer needs every layer's output, and
mixed-vocabulary training feeds the teacher word vectors that come from two
tables. These functions run the same modules (``nn.LayerNorm``,
:class:`~jaxcompress.nn.transformer.TransformerBlock`,
:class:`~jaxcompress.nn.albert.MaskedLMHead`) on the slices of the same
parameter tree, deterministically (no dropout), so an ``AlbertEncoder``'s
parameters serve both paths unchanged.

Shapes: ``word_vectors [B, S, E]``, ``token_type_ids``/``attention_mask [B, S]``
-> ``L + 1`` hidden states ``[B, S, H]`` (the embedding output, then each layer's).

References:
  Devlin et al., "BERT", NAACL 2019; Lan et al., "ALBERT", ICLR 2020;
  Zhao et al., "Extremely Small BERT Models from Mixed-Vocabulary Training",
  EACL 2021 (layer-wise transfer needs every layer).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcompress.errors import ConfigError
from jaxcompress.nn.albert import AlbertConfig, MaskedLMHead
from jaxcompress.nn.transformer import TransformerBlock


def word_table(encoder: dict[str, Any]) -> jax.Array:
    """The encoder's word embedding table ``[V, E]``."""
    return nn.unbox(encoder["embeddings"]["word"]["embedding"])


def hidden_states(config: AlbertConfig, encoder: dict[str, Any], word_vectors: jax.Array,
                  token_type_ids: jax.Array | None = None,
                  attention_mask: jax.Array | None = None) -> list[jax.Array]:
    """Every hidden state of the encoder on ``word_vectors`` (what the word table would give for the ids).

    Args:
      config: the encoder's config; one layer per application (``inner_group_num=1``) and one
        hidden group.
      encoder: the ``encoder`` subtree of an ALBERT/BERT model's params.
      word_vectors: ``[B, S, E]``.
      token_type_ids: ``[B, S]`` or None (all 0).
      attention_mask: ``[B, S]`` (1 = real token) or None.

    Returns:
      ``L + 1`` arrays ``[B, S, H]``: the embeddings, then the output of each layer.

    Raises:
      ConfigError: hidden groups or inner groups (their layer slices are not modelled here).
    """
    if config.inner_group_num != 1 or config.num_hidden_groups != 1:
        raise ConfigError("layer-wise hidden states need model.inner_group_num=1 and model.num_hidden_groups=1")
    encoder = nn.unbox(encoder)
    emb = encoder["embeddings"]
    length = word_vectors.shape[1]
    if token_type_ids is None:
        token_type_ids = jnp.zeros(word_vectors.shape[:2], jnp.int32)
    x = (word_vectors + emb["position"]["embedding"][:length][None]
         + jnp.take(emb["token_type"]["embedding"], token_type_ids, axis=0))
    x = nn.LayerNorm(epsilon=config.layer_norm_eps).apply({"params": emb["norm"]}, x)
    if config.embedding_projection:
        x = x @ emb["projection"]["kernel"] + emb["projection"]["bias"]
    mask = None if attention_mask is None else attention_mask.astype(bool)
    layers = encoder["transformer"]["layers"]
    block = TransformerBlock(config.stack_spec(), deterministic=True)
    states = [x]
    for index in range(config.num_layers):
        # Per-layer sublayers carry a leading layer axis; shared ones (ALBERT) do not.
        layer = {name: (jax.tree.map(lambda a: a[index], sub) if _per_layer(config, name) else sub)
                 for name, sub in layers.items()}
        x = block.apply({"params": layer}, x, mask)
        states.append(x)
    return states


def _per_layer(config: AlbertConfig, sublayer: str) -> bool:
    return config.sharing == "none" or (config.sharing != "all" and config.sharing != sublayer)


def mlm_logits(config: AlbertConfig, head: dict[str, Any], hidden: jax.Array, table: jax.Array) -> jax.Array:
    """The tied masked-LM head: ``hidden [B, P, H]`` scored against ``table [V, E]`` -> ``[B, P, V]``."""
    return MaskedLMHead(config).apply({"params": nn.unbox(head)}, hidden, lambda h: h @ table.T.astype(h.dtype))
