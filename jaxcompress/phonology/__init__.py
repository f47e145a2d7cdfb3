"""Phonology for cross-lingual TTS transfer: languages, IPA inventories, features, phone mapping, ASPF.

Modules: :mod:`~jaxcompress.phonology.languages` (the paper's 11 languages, their
eSpeak NG voices and family-tree paths), :mod:`~jaxcompress.phonology.inventory`
(IPA transcription with eSpeak NG, phone normalisation, counts),
:mod:`~jaxcompress.phonology.features` (PanPhon's 24 features, or PHOIBLE's 37 from
a user-supplied table), :mod:`~jaxcompress.phonology.mapping` (nearest-phone mapping
with the context-frequency tie-break) and :mod:`~jaxcompress.phonology.aspf` (ASPF).

References: Do, Coler, Dijkstra, Klabbers, "Strategies in Transfer Learning for
Low-Resource Speech Synthesis: Phone Mapping, Features Input, and Source Language
Selection", SSW 2023 (arXiv 2306.12040).
"""
