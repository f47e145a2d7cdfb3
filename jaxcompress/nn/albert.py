"""ALBERT and BERT encoders (Flax Linen) and the heads their tasks train.

One encoder covers both models: a factorised embedding (``vocab x E`` tables,
then ``E -> H``) and a post-LN transformer stack whose layers are shared as the
config says (``sharing="none"`` with ``E == H`` is BERT, which has no ``E -> H``
map; everything else is ALBERT, which always has it, as transformers' ALBERT
does, even when ``E == H``; ``sharing="all"`` with ``E = 128`` is the paper's
ALBERT). See :mod:`jaxcompress.nn.transformer` for the stack.

Call signatures (``params`` from ``module.init(rng, ...)["params"]``; every
module takes ``deterministic=False`` plus ``rngs={"dropout": key}`` to train):

``AlbertEncoder(config)``
    ``(input_ids [B, S] int, token_type_ids [B, S] | None, attention_mask
    [B, S] | None) -> (sequence [B, S, H], pooled [B, H])``. ``attention_mask``
    is 1/True for real tokens; ``pooled = tanh(W h_[CLS] + b)``.
    ``encoder.attend(h [..., E]) -> [..., V]`` multiplies by the word table.
``AlbertForPreTraining(config, num_sentence_labels=2)``
    ``(input_ids, token_type_ids, attention_mask, masked_positions [B, P] int
    | None) -> {"mlm_logits": [B, P, V] (or [B, S, V] without positions),
    "sentence_logits": [B, 2], "sequence": [B, S, H], "pooled": [B, H]}``.
    The MLM head is tied to the input word table; the sentence head serves
    sentence-order prediction (SOP) or next-sentence prediction (NSP).
``AlbertForSequenceClassification(config, num_classes, pooling="cls")``
    ``(input_ids, token_type_ids, attention_mask) -> logits [B, C]`` (pooled
    [CLS], or with ``pooling="mean"`` the masked token mean -> dropout -> dense).
``AlbertForTokenClassification(config, num_classes)``
    ``(input_ids, token_type_ids, attention_mask) -> logits [B, S, C]``.
``validate_inputs(config, input_ids, token_type_ids=None)``
    host-side (NumPy) check for ``prepare_batch``: raises
    :class:`~jaxcompress.errors.DataError` for sequences longer than the
    position table and ids outside the vocabulary or the token types.

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020; Devlin et al., "BERT: Pre-training of Deep
  Bidirectional Transformers for Language Understanding", NAACL 2019.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcompress.configlib import option
from jaxcompress.errors import ConfigError, DataError
from jaxcompress.nn.transformer import ACTIVATIONS, HIDDEN_AXES, REMAT_POLICIES, SHARING_MODES, StackSpec, layer_stack

DTYPES: dict[str, Any] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass
class AlbertConfig:
    """An ALBERT or BERT encoder: sizes, sharing, regularisation, numerics.

    BERT is ``embedding_size == hidden_size``, ``sharing="none"`` and
    ``inner_group_num=1`` (see :attr:`is_bert`); every other config is ALBERT,
    whose embeddings always end in the ``E -> H`` projection.
    """

    vocab_size: int = option(8000, help="V: token vocabulary size", min=2)
    embedding_size: int = option(128, help="E: width of the embedding tables; ALBERT (any config but "
                                           "BERT's: sharing=none, E=hidden_size) adds an E->H projection "
                                           "(the factorised embedding), even when E=hidden_size", min=1)
    hidden_size: int = option(768, help="H: transformer width", min=1)
    num_layers: int = option(12, help="L: transformer layers (layer applications when shared)", min=1)
    num_heads: int = option(12, help="attention heads (must divide hidden_size)", min=1)
    intermediate_size: int = option(3072, help="feed-forward width", min=1)
    sharing: str = option("all", help="cross-layer parameter sharing", choices=SHARING_MODES)
    num_hidden_groups: int = option(1, help="ALBERT hidden groups: layers in a group share parameters "
                                            "(must divide num_layers)", min=1)
    inner_group_num: int = option(1, help="distinct blocks inside each layer application", min=1)
    max_position: int = option(512, help="length of the position table (longest sequence)", min=1)
    type_vocab_size: int = option(2, help="token types (segments A/B)", min=1)
    hidden_act: str = option("gelu", help="feed-forward activation ('gelu_tanh' is ALBERT's 'gelu_new')",
                             choices=tuple(ACTIVATIONS))
    dropout: float = option(0.1, help="dropout on embeddings and sublayer outputs", min=0.0, max=0.95)
    attention_dropout: float = option(0.0, help="dropout on attention probabilities (>0 trains without the "
                                                "fused attention kernel)", min=0.0, max=0.95)
    classifier_dropout: float = option(0.1, help="dropout before sentence/classification heads",
                                       min=0.0, max=0.95)
    layer_norm_eps: float = option(1e-12, help="LayerNorm epsilon", min=0.0, min_exclusive=True)
    initializer_range: float = option(0.02, help="std of the normal weight initialiser", min=0.0,
                                      min_exclusive=True)
    # "dots_no_batch" by measurement (benchmarks/albert_vs_hf.py, ALBERT-base and BERT-base on CPU): the scanned
    # backward of "none" stacks every elementwise intermediate of every layer; keeping only the projections'
    # outputs (not the attention scores and context, whose einsums have batch dimensions and cost 2.7% of the
    # FLOPs to redo) gives the lowest peak memory at the same throughput as keeping every matmul output.
    remat: str = option("dots_no_batch", help="rematerialisation policy of each layer",
                        choices=tuple(REMAT_POLICIES))
    dtype: str = option("float32", help="computation dtype (parameters stay float32)", choices=tuple(DTYPES))
    scan_unroll: int = option(1, help="layers per scan iteration: 1 compiles one layer body (fastest "
                                      "compile); num_layers unrolls the stack", min=1)
    head_dim: int = option(0, help="width of each attention head; 0 = hidden_size / num_heads (structured "
                                   "head pruning sets it to keep the width)", min=0)

    def validate(self, prefix: str) -> None:
        if not self.head_dim and self.hidden_size % self.num_heads:
            raise ConfigError(f"config key '{prefix}num_heads' must divide {prefix}hidden_size="
                              f"{self.hidden_size}, got {self.num_heads}")
        if self.sharing == "none" and self.num_hidden_groups != 1:
            raise ConfigError(f"config key '{prefix}num_hidden_groups' must be 1 with {prefix}sharing=none "
                              f"(every layer has its own parameters), got {self.num_hidden_groups}")
        if self.num_layers % self.num_hidden_groups:
            raise ConfigError(f"config key '{prefix}num_hidden_groups' must divide {prefix}num_layers="
                              f"{self.num_layers}, got {self.num_hidden_groups}")

    # -- derived -------------------------------------------------------------

    @property
    def is_bert(self) -> bool:
        """BERT's layout: no sharing, ``E == H``, one block per layer (and so no ``E -> H`` map).

        Every other config is ALBERT's, whose embeddings always end in the
        ``E -> H`` projection (transformers' ``embedding_hidden_mapping_in``,
        applied whatever ``E`` is).
        """
        return self.sharing == "none" and self.embedding_size == self.hidden_size and self.inner_group_num == 1

    @property
    def embedding_projection(self) -> bool:
        """Whether the embeddings end in the ``E -> H`` projection (ALBERT, not BERT)."""
        return not self.is_bert

    def stack_spec(self) -> StackSpec:
        """The layer stack's hyper-parameters."""
        return StackSpec(hidden_size=self.hidden_size, num_heads=self.num_heads,
                         intermediate_size=self.intermediate_size, num_layers=self.num_layers,
                         sharing=self.sharing, num_groups=self.num_hidden_groups,
                         inner_group_num=self.inner_group_num, activation=self.hidden_act, dropout=self.dropout,
                         attention_dropout=self.attention_dropout, layer_norm_eps=self.layer_norm_eps,
                         init_std=self.initializer_range, remat=self.remat, dtype=DTYPES[self.dtype],
                         scan_unroll=self.scan_unroll, head_size=self.head_dim)

    def param_breakdown(self) -> dict[str, int]:
        """Parameter counts of the encoder's parts, from ``jax.eval_shape`` of ``init``.

        Nothing is allocated, so this works for the largest presets on a laptop.

        Returns:
          ``{"embedding", "encoder", "pooler", "mlm_head", "sentence_head"}``;
          ``embedding`` includes the E->H projection, ``encoder`` is the layer
          stack, the two heads are those of :class:`AlbertForPreTraining`.
        """
        ids = jax.ShapeDtypeStruct((1, 8), jnp.int32)
        shapes = jax.eval_shape(lambda key: AlbertForPreTraining(self).init(key, ids), jax.random.key(0))
        params = nn.unbox(shapes["params"])

        def count(tree: Any) -> int:
            return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(tree)))

        encoder = params["encoder"]
        return {"embedding": count(encoder["embeddings"]), "encoder": count(encoder["transformer"]),
                "pooler": count(encoder["pooler"]), "mlm_head": count(params["mlm_head"]),
                "sentence_head": count(params["sentence_head"])}

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Forward FLOPs per token of the encoder (2 per multiply-add), heads excluded.

        Counts the matrix products (embedding projection, Q/K/V/output,
        feed-forward) and the two attention products ``q kᵀ`` and ``p v``,
        which grow with the sequence length (``max_position`` by default).
        Sharing saves parameters, not FLOPs: every layer application counts.
        """
        seq_len = seq_len or self.max_position
        h, i, e = self.hidden_size, self.intermediate_size, self.embedding_size
        projection = e * h if self.embedding_projection else 0
        per_block = 4 * h * h + 2 * h * i + 2 * seq_len * h  # weights, then q·kᵀ and p·v
        return float(2 * (projection + self.num_layers * self.inner_group_num * per_block))


def _dense(features: int, names: tuple[str | None, str | None], init_std: float, dtype: Any,
           name: str) -> nn.Dense:
    return nn.Dense(features, dtype=dtype, name=name,
                    kernel_init=nn.with_logical_partitioning(nn.initializers.normal(init_std), names),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), names[1:]))


def _layer_norm(config: AlbertConfig, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=config.layer_norm_eps, dtype=DTYPES[config.dtype], name=name,
                        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",)),
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)))


class Embeddings(nn.Module):
    """Word + position + token-type embeddings of width E, LayerNorm, dropout, then E -> H.

    The ``E -> H`` projection (ALBERT's factorised embedding) exists for every
    ALBERT config, ``E == H`` included (as in transformers), and not for BERT
    (:attr:`AlbertConfig.is_bert`); its ``E`` input axis is left unnamed
    (replicated) because ``embed`` already names the ``H`` axis.

    Shapes: ``input_ids [B, S]``, ``token_type_ids [B, S]`` -> ``[B, S, H]``.

    References:
      Lan et al., ALBERT, ICLR 2020, sec. 3.1 (factorised embedding parameterisation).
    """

    config: AlbertConfig
    deterministic: bool = True

    def setup(self) -> None:
        cfg = self.config
        normal = nn.initializers.normal(cfg.initializer_range)
        dtype = DTYPES[cfg.dtype]
        self.word = nn.Embed(cfg.vocab_size, cfg.embedding_size, dtype=dtype,
                             embedding_init=nn.with_logical_partitioning(normal, ("vocab", "embed")))
        self.position = nn.Embed(cfg.max_position, cfg.embedding_size, dtype=dtype,
                                 embedding_init=nn.with_logical_partitioning(normal, ("length", "embed")))
        self.token_type = nn.Embed(cfg.type_vocab_size, cfg.embedding_size, dtype=dtype,
                                   embedding_init=nn.with_logical_partitioning(normal, (None, "embed")))
        self.norm = _layer_norm(cfg, "norm")
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.embedding_projection:
            self.projection = _dense(cfg.hidden_size, (None, "embed"), cfg.initializer_range, dtype, "projection")

    def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array) -> jax.Array:
        length = input_ids.shape[-1]
        if length > self.config.max_position:
            raise DataError(f"sequence length {length} exceeds the position table: model.max_position="
                            f"{self.config.max_position}; truncate the inputs or raise max_position")
        x = self.word(input_ids) + self.position(jnp.arange(length))[None] + self.token_type(token_type_ids)
        x = self.drop(self.norm(x), deterministic=self.deterministic)
        if self.config.embedding_projection:
            x = self.projection(x)
        return nn.with_logical_constraint(x, HIDDEN_AXES)

    def attend(self, hidden: jax.Array) -> jax.Array:
        """``hidden [..., E] @ word_tableᵀ -> [..., V]`` (the tied output layer)."""
        return self.word.attend(hidden)


class AlbertEncoder(nn.Module):
    """Embeddings, the shared/unshared transformer stack and the [CLS] pooler.

    Shapes: ``input_ids [B, S]`` (``token_type_ids``, ``attention_mask`` the
    same, optional) -> ``(sequence [B, S, H], pooled [B, H])``.

    References:
      Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of
      Language Representations", ICLR 2020.
    """

    config: AlbertConfig
    deterministic: bool = True

    def setup(self) -> None:
        cfg = self.config
        self.embeddings = Embeddings(cfg, self.deterministic)
        self.transformer = layer_stack(cfg.stack_spec(), self.deterministic)
        self.pooler = _dense(cfg.hidden_size, ("embed", "mlp"), cfg.initializer_range, DTYPES[cfg.dtype], "pooler")

    def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array | None = None,
                 attention_mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        mask = None if attention_mask is None else attention_mask.astype(bool)
        x = self.embeddings(input_ids, token_type_ids)
        sequence = self.transformer(x, mask)
        pooled = jnp.tanh(self.pooler(sequence[:, 0]))
        return sequence, nn.with_logical_constraint(pooled, ("batch", "mlp"))

    def attend(self, hidden: jax.Array) -> jax.Array:
        """Logits against the input word table: ``[..., E] -> [..., V]``."""
        return self.embeddings.attend(hidden)


class MaskedLMHead(nn.Module):
    """Dense H -> E, activation, LayerNorm, then the tied word table plus a bias.

    Shapes: ``hidden [B, P, H]`` and ``attend`` (``[..., E] -> [..., V]``, the
    encoder's tied table) -> logits ``[B, P, V]``.

    References:
      Devlin et al., BERT, NAACL 2019 (masked LM); Lan et al., ALBERT, ICLR 2020
      (the head projects to the embedding width E).
    """

    config: AlbertConfig

    @nn.compact
    def __call__(self, hidden: jax.Array, attend: Any) -> jax.Array:
        cfg = self.config
        h = _dense(cfg.embedding_size, ("embed", None), cfg.initializer_range, DTYPES[cfg.dtype], "transform")(hidden)
        h = _layer_norm(cfg, "norm")(ACTIVATIONS[cfg.hidden_act](h))
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros_init(), ("vocab",)),
                          (cfg.vocab_size,))
        logits = attend(h) + bias
        return nn.with_logical_constraint(logits, ("batch", "length", "vocab"))


class ClassifierHead(nn.Module):
    """Dropout then a dense layer: the SOP/NSP, sequence and token classifiers.

    Shapes: ``[..., H] -> [..., num_classes]``.

    References:
      Lan et al., ALBERT, ICLR 2020, sec. 3.1 (sentence-order prediction head).
    """

    config: AlbertConfig
    num_classes: int
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        x = nn.Dropout(cfg.classifier_dropout)(x, deterministic=self.deterministic)
        return _dense(self.num_classes, ("mlp", "classes"), cfg.initializer_range, DTYPES[cfg.dtype],
                      "logits")(x)


def gather_positions(sequence: jax.Array, positions: jax.Array) -> jax.Array:
    """``sequence [B, S, H]`` at ``positions [B, P]`` -> ``[B, P, H]``."""
    return jnp.take_along_axis(sequence, positions[..., None].astype(jnp.int32), axis=1)


class AlbertForPreTraining(nn.Module):
    """Encoder + tied masked-LM head + sentence (SOP/NSP) head.

    Shapes: see the module docstring; ``masked_positions [B, P]`` selects the
    positions whose logits are computed (ALBERT's ``max_predictions_per_seq``).

    References:
      Lan et al., ALBERT, ICLR 2020, sec. 3.1-3.2 (MLM + SOP pretraining).
    """

    config: AlbertConfig
    num_sentence_labels: int = 2
    deterministic: bool = True

    @nn.compact
    def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array | None = None,
                 attention_mask: jax.Array | None = None,
                 masked_positions: jax.Array | None = None) -> dict[str, jax.Array]:
        encoder = AlbertEncoder(self.config, self.deterministic, name="encoder")
        sequence, pooled = encoder(input_ids, token_type_ids, attention_mask)
        selected = sequence if masked_positions is None else gather_positions(sequence, masked_positions)
        mlm_logits = MaskedLMHead(self.config, name="mlm_head")(selected, encoder.attend)
        sentence_logits = ClassifierHead(self.config, self.num_sentence_labels, self.deterministic,
                                         name="sentence_head")(pooled)
        return {"mlm_logits": mlm_logits, "sentence_logits": sentence_logits, "sequence": sequence,
                "pooled": pooled}


#: What a sequence classifier reads: the pooler's ``tanh(W h_[CLS] + b)`` or the masked mean of the sequence.
POOLING = ("cls", "mean")


def masked_mean(sequence: jax.Array, attention_mask: jax.Array | None) -> jax.Array:
    """Mean of ``sequence [B, S, H]`` over the real tokens (``attention_mask [B, S]``) -> ``[B, H]``."""
    if attention_mask is None:
        return sequence.mean(axis=1)
    weights = attention_mask.astype(sequence.dtype)[..., None]
    return (sequence * weights).sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1.0)


class AlbertForSequenceClassification(nn.Module):
    """Encoder + classifier on the pooled [CLS] vector (or the masked token mean): ``[B, S] -> [B, C]``.

    ``pooling="mean"`` reads the mean of the last layer over the real tokens
    instead of ``tanh(W h_[CLS])``; the pooler's parameters stay (unused), so
    the encoder subtree is the same either way.

    References:
      Devlin et al., BERT, NAACL 2019, sec. 4 (fine-tuning on [CLS]);
      Reimers & Gurevych, "Sentence-BERT", EMNLP 2019, sec. 3 (mean pooling).
    """

    config: AlbertConfig
    num_classes: int
    deterministic: bool = True
    pooling: str = "cls"

    @nn.compact
    def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array | None = None,
                 attention_mask: jax.Array | None = None) -> jax.Array:
        if self.pooling not in POOLING:
            raise ConfigError(f"pooling must be one of {', '.join(POOLING)}, got {self.pooling!r}")
        sequence, pooled = AlbertEncoder(self.config, self.deterministic, name="encoder")(
            input_ids, token_type_ids, attention_mask)
        if self.pooling == "mean":
            pooled = masked_mean(sequence, attention_mask)
        return ClassifierHead(self.config, self.num_classes, self.deterministic, name="classifier")(pooled)


class AlbertForTokenClassification(nn.Module):
    """Encoder + per-token classifier: ``[B, S] -> [B, S, C]``.

    References:
      Devlin et al., BERT, NAACL 2019, sec. 4.3 (token-level tasks).
    """

    config: AlbertConfig
    num_classes: int
    deterministic: bool = True

    @nn.compact
    def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array | None = None,
                 attention_mask: jax.Array | None = None) -> jax.Array:
        sequence, _ = AlbertEncoder(self.config, self.deterministic, name="encoder")(
            input_ids, token_type_ids, attention_mask)
        return ClassifierHead(self.config, self.num_classes, self.deterministic, name="classifier")(sequence)


def validate_inputs(config: AlbertConfig, input_ids: np.ndarray, token_type_ids: np.ndarray | None = None,
                    what: str = "input_ids") -> None:
    """Host-side checks of a token batch against the model config.

    Args:
      config: the model config.
      input_ids: ``[B, S]`` integer token ids.
      token_type_ids: optional ``[B, S]`` segment ids.
      what: the name used for ``input_ids`` in messages (e.g. the dataset feature).

    Raises:
      DataError: for a non-2-D batch, a sequence longer than
        ``max_position``, or an id outside ``[0, vocab_size)`` /
        ``[0, type_vocab_size)``, naming the first offending value.
    """
    ids = np.asarray(input_ids)
    if ids.ndim != 2:
        raise DataError(f"{what} must be a [batch, length] array of token ids, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"{what} must hold integer token ids, got dtype {ids.dtype}")
    if ids.shape[1] > config.max_position:
        raise DataError(f"{what} has sequences of length {ids.shape[1]} but model.max_position="
                        f"{config.max_position}; truncate them or raise model.max_position")
    _check_range(ids, config.vocab_size, what, "model.vocab_size")
    if token_type_ids is not None:
        types = np.asarray(token_type_ids)
        if types.shape != ids.shape:
            raise DataError(f"token_type_ids has shape {types.shape} but {what} has shape {ids.shape}")
        _check_range(types, config.type_vocab_size, "token_type_ids", "model.type_vocab_size")


def _check_range(values: np.ndarray, size: int, what: str, key: str) -> None:
    bad = (values < 0) | (values >= size)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{what} holds id {int(values[row, col])} at [{row}, {col}], outside [0, {size}) "
                        f"allowed by {key}={size}")
