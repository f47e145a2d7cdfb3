"""Parameter paths and regex selection: the one way every method picks its leaves.

A leaf's path is its dict keys joined by ``/`` (``encoder/layer_0/attention/query/kernel``).
Rules are regular expressions matched with ``re.search`` against that path;
exclusions win over inclusions. By default only matrices and conv kernels are
selected (``ndim >= 2``): embeddings, norms and biases are never touched unless
a rule names them.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Sequence

import jax

from jaxcompress.errors import ConfigError

# Leaves no method touches unless a rule selects them explicitly.
PROTECTED = r"(^|/)(embedding|embeddings|word_embeddings|position_embeddings|token_type_embeddings|" \
            r"LayerNorm|layer_norm|norm|ln_\w+|scale)(/|$)"


def path_str(path: Sequence[Any]) -> str:
    """``('a', 'b', 0)`` key path -> ``'a/b/0'``.

    Flax's partitioning boxes add a ``.value`` step that is not part of the
    parameter's name, so it is dropped: a boxed and an unboxed tree give the
    same paths.
    """
    parts = []
    for key in path:
        if isinstance(key, jax.tree_util.GetAttrKey) and key.name == "value":
            continue
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def leaf_paths(tree: Any) -> list[str]:
    """All leaf paths of ``tree`` in flatten order."""
    return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def map_with_path(fn: Callable[[str, Any], Any], tree: Any, *rest: Any) -> Any:
    """``jax.tree.map`` whose function also receives the leaf's path string."""
    return jax.tree_util.tree_map_with_path(lambda p, x, *r: fn(path_str(p), x, *r), tree, *rest)


def _compile(rules: str | Iterable[str], field: str) -> list[re.Pattern]:
    rules = [rules] if isinstance(rules, str) else list(rules)
    compiled = []
    for rule in rules:
        try:
            compiled.append(re.compile(rule))
        except re.error as exc:
            raise ConfigError(f"{field} rule {rule!r} is not a valid regular expression: {exc}") from None
    return compiled


def select(params: Any, include: str | Iterable[str] = ".*", exclude: str | Iterable[str] = (),
           min_ndim: int = 2, field: str = "include") -> Any:
    """A boolean pytree mirroring ``params``: True where a method should act.

    Args:
      params: the parameter pytree.
      include: regexes; a leaf is a candidate if any matches its path.
      exclude: regexes; a matching leaf is dropped even if included.
      min_ndim: leaves with fewer dimensions (biases, norm scales) are skipped.
      field: the config field named in errors.

    Raises:
      ConfigError: if a rule is not a regex, or an include rule matches no
        eligible leaf (a typo would otherwise silently compress nothing).
    """
    includes, excludes = _compile(include, field), _compile(exclude, "exclude")
    explicit = [r for r in includes if r.pattern not in (".*", "")]
    protected = re.compile(PROTECTED)
    used = {r.pattern: False for r in includes}

    def choose(path: str, leaf: Any) -> bool:
        if getattr(leaf, "ndim", 0) < min_ndim:
            return False
        hits = [r for r in includes if r.search(path)]
        if not hits or any(r.search(path) for r in excludes):
            return False
        # Embeddings and norms only when a rule other than the catch-all names them.
        if protected.search(path) and not any(r in explicit for r in hits):
            return False
        for r in hits:
            used[r.pattern] = True
        return True

    chosen = map_with_path(choose, params)
    unused = [p for p, hit in used.items() if not hit]
    if unused:
        eligible = [p for p, x in zip(leaf_paths(params), jax.tree.leaves(params)) if getattr(x, "ndim", 0) >= min_ndim]
        raise ConfigError(f"{field} rule {unused[0]!r} matches no parameter with ndim >= {min_ndim}; "
                          f"parameters are: {', '.join(eligible[:12])}{' ...' if len(eligible) > 12 else ''}")
    return chosen
