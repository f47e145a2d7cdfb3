"""Built-in tasks; importing this package registers them with the loop."""

from jaxcompress.tasks import (  # noqa: F401
    cap,
    classification,
    distillation,
    gcl,
    lio,
    mixed_vocab,
    mlm_sop,
    mtal,
    ofa_speech,
    point,
    speech_probe,
    text_classification,
    tts,
)
