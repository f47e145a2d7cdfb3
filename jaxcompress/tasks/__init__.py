"""Built-in tasks; importing this package registers them with the loop."""

from jaxcompress.tasks import (  # noqa: F401
    cap,
    classification,
    distillation,
    gcl,
    lio,
    mlm_sop,
    ofa_speech,
    point,
    speech_probe,
    text_classification,
    tts,
)
