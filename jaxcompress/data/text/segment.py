"""Plain-text cleaning, sentence splitting and ALBERT-style blocks of consecutive sentences.

Docstrings and the ``pydoc_data`` topics are reStructuredText-like: title
underlines, indented code, hard-wrapped paragraphs. :func:`sentences` turns
such text into a list of single-line sentences; :func:`make_blocks` groups a
document's sentences into blocks of about a target length, each of which
becomes one pretraining example (two consecutive segments).

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020, sec. 4.1 (segments and short-sequence
  probability follow BERT's pretraining-data recipe: Devlin et al., "BERT",
  NAACL 2019, appendix A.2).
"""

from __future__ import annotations

import re

import numpy as np

# A line made of one punctuation character repeated (title underlines: ****, ====, ----).
_RULE = re.compile(r"^\s*([=\-~*^#+_.`'\"])\1{2,}\s*$")
# A sentence ends at ., ! or ? followed by white space and an upper-case letter,
# a digit or an opening quote/bracket. Abbreviations such as "e.g. the" are
# not split because a lower-case word follows.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_SPACES = re.compile(r"\s+")


def paragraphs(text: str) -> list[str]:
    """Splits text at blank lines, drops title underlines, joins wrapped lines.

    Returns:
      Non-empty paragraphs, each on one line with single spaces.
    """
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if not _RULE.match(line)]
    out = []
    for block in "\n".join(lines).split("\n\n"):
        flat = _SPACES.sub(" ", block).strip()
        if flat:
            out.append(flat)
    return out


def split_long(sentence: str, max_chars: int) -> list[str]:
    """Cuts a sentence longer than ``max_chars`` at spaces into pieces of at most that length.

    A single word longer than ``max_chars`` is kept whole (it is truncated later, in tokens).
    """
    if len(sentence) <= max_chars:
        return [sentence]
    pieces, current = [], ""
    for word in sentence.split(" "):
        if current and len(current) + 1 + len(word) > max_chars:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def sentences(text: str, max_chars: int = 400) -> list[str]:
    """Splits a document into single-line sentences of at most ``max_chars`` characters (where possible).

    Args:
      text: a docstring or topic, with newlines.
      max_chars: longer sentences (code listings, grammar rules) are cut at spaces.

    Returns:
      The sentences in document order, none empty, none containing a newline.
    """
    out = []
    for paragraph in paragraphs(text):
        for sentence in _SENTENCE_END.split(paragraph):
            sentence = sentence.strip()
            if sentence:
                out.extend(split_long(sentence, max_chars))
    return out


def make_blocks(document: list[str], target_chars: int, rng: np.random.Generator,
                short_seq_prob: float = 0.1, min_chars: int = 16) -> list[list[str]]:
    """Groups consecutive sentences of one document into blocks of about ``target_chars``.

    As in BERT/ALBERT's pretraining-data builder: sentences are added to the
    current block until its length reaches the target; with probability
    ``short_seq_prob`` a block's target is drawn uniformly from
    ``[min_chars, target_chars]`` instead, so the model also sees short inputs.
    The last, possibly short, block is kept.

    Args:
      document: the document's sentences, in order.
      target_chars: T, the usual block length in characters.
      rng: the random generator (consumed deterministically).
      short_seq_prob: probability of a shorter target.
      min_chars: smallest short target.

    Returns:
      Blocks, each a non-empty list of consecutive sentences; concatenated in
      order they give ``document`` back.
    """
    blocks: list[list[str]] = []
    current: list[str] = []
    length = 0
    target = _draw_target(target_chars, rng, short_seq_prob, min_chars)
    for sentence in document:
        current.append(sentence)
        length += len(sentence) + 1
        if length >= target:
            blocks.append(current)
            current, length = [], 0
            target = _draw_target(target_chars, rng, short_seq_prob, min_chars)
    if current:
        blocks.append(current)
    return blocks


def _draw_target(target_chars: int, rng: np.random.Generator, short_seq_prob: float, min_chars: int) -> int:
    if rng.random() < short_seq_prob:
        return int(rng.integers(min(min_chars, target_chars), target_chars + 1))
    return target_chars
