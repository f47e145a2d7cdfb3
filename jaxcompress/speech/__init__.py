"""Offline speech data: eSpeak NG synthesis with exact boundaries, log-mel features, corpora.

Modules: :mod:`~jaxcompress.speech.espeak` (synthesis through ``ctypes``),
:mod:`~jaxcompress.speech.features` (100 Hz log-mels), :mod:`~jaxcompress.speech.boundaries`
(segment boundaries on frame grids, CIF pseudo weights) and
:mod:`~jaxcompress.speech.corpus` (the spoken-commands and digit-string corpora
behind the ``speech_*`` datasets).

References: Chen, Meng, Lee, "Once-for-All Sequence Compression for
Self-Supervised Speech Models", ICASSP 2023 (arXiv 2211.02332).
"""
