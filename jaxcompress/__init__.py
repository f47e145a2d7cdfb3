"""jaxcompress: self-supervised pretraining and model compression in JAX/Flax."""

from __future__ import annotations

__version__ = "0.1.0"
