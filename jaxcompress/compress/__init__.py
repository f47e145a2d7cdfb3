"""Compression: pruning, quantization, low-rank, weight sharing, distillation, reports.

Every method is a pure function over param pytrees (or an optax wrapper) that
selects its leaves with regex rules over parameter paths, and maps a
:class:`Compressed` artifact to a new one so methods compose.
"""

from jaxcompress.compress.artifact import Compressed, register_decoder
from jaxcompress.compress.paths import leaf_paths, map_with_path, path_str, select
from jaxcompress.compress.storage import LeafStorage

__all__ = ["Compressed", "LeafStorage", "leaf_paths", "map_with_path", "path_str", "register_decoder", "select"]
