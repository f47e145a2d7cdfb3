"""Built-in tasks; importing this package registers them with the loop."""

from jaxcompress.tasks import classification  # noqa: F401
from jaxcompress.tasks import mlm_sop, text_classification  # noqa: F401
from jaxcompress.tasks import gcl  # noqa: F401
from jaxcompress.tasks import distillation  # noqa: F401
from jaxcompress.tasks import ofa_speech, speech_probe  # noqa: F401
