"""Every named preset, one module per family; importing this package registers them (and the tasks).

Example::

    from jaxcompress.configs import get_preset
    from jaxcompress.configlib import apply_overrides, validate
    cfg = apply_overrides(get_preset("digits-mlp"), ["optim.learning_rate=3e-3"])
    validate(cfg)
"""

import jaxcompress.tasks  # noqa: F401  (registers the built-in tasks the presets name)
from jaxcompress.configs import albert, digits, gcl, lio, mtal, point, speech, text, tts  # noqa: F401  (register their presets)
from jaxcompress.configs._registry import PRESETS, get_preset, load_config, register_preset

__all__ = ["PRESETS", "get_preset", "load_config", "register_preset"]
