"""Self-supervised objectives, augmentations and their evaluation, as pure functions.

    from jaxcompress.ssl import GCLConfig, GCLModel, nt_xent, span_views, sample_lambda

* graph contrastive learning: :class:`GCLConfig`, :class:`GCLModel`, :func:`objective`
  (GraphCL, GRACE, local-global), the losses :func:`nt_xent`, :func:`grace_loss`,
  :func:`local_global_jsd`, random augmentations :func:`augment`;
* spectral augmentation (SPAN): :class:`SpanConfig`, :func:`span_views`, the cached
  precompute :func:`load_or_compute`, robustness attacks :func:`perturb`,
  probes on frozen features :func:`fit_probe` (logistic regression) and :func:`fit_head` (trained heads);
* once-for-all sequence compression: :class:`OFASpeechConfig`, :func:`sample_lambda`,
  :func:`lambda_for_frame_period`, BEST-RQ targets :func:`bestrq_codes`.

References:
  You et al., NeurIPS 2020 (GraphCL); Zhu et al., 2020 (GRACE); Lin et al.,
  ICLR 2023 (SPAN); Chen et al., 2022 (once-for-all sequence compression).
"""

from jaxcompress.ssl.gcl import GCLConfig, GCLModel, contrastive_loss, embed, make_views, objective
from jaxcompress.ssl.gcl_losses import grace_loss, local_global_jsd, nt_xent
from jaxcompress.ssl.graph_augment import augment
from jaxcompress.ssl.ofa import OFASpeechConfig, bestrq_codes, lambda_for_frame_period, sample_lambda
from jaxcompress.ssl.probe import HeadFit, fit_head, fit_probe
from jaxcompress.ssl.robustness import perturb
from jaxcompress.ssl.span import SpanConfig, span_views
from jaxcompress.ssl.span_cache import load_or_compute

__all__ = [
    "GCLConfig", "GCLModel", "HeadFit", "OFASpeechConfig", "SpanConfig", "augment", "bestrq_codes", "contrastive_loss",
    "embed", "fit_head", "fit_probe", "grace_loss", "lambda_for_frame_period", "load_or_compute", "local_global_jsd",
    "make_views", "nt_xent", "objective", "perturb", "sample_lambda", "span_views",
]
