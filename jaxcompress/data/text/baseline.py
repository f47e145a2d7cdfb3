"""The bag-of-words baseline every text-classification experiment reports beside its encoders.

TF-IDF of words and word pairs (sublinear term frequency, terms in at least
two training texts) and a logistic regression (C = 10), fitted on the train
split and scored on the evaluation split. A fine-tuned encoder below it has
learned less from the passages than a linear model of their words; below the
majority rate, nothing at all.

References:
  Wang & Manning, "Baselines and Bigrams: Simple, Good Sentiment and Topic
  Classification", ACL 2012 (word n-gram linear baselines).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

#: The recipe, as reported beside the number.
RECIPE = ("TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2) + LogisticRegression(C=10), "
          "fitted on the train split")


def _texts_and_labels(name: str, split: str, text_field: str, label_field: str,
                      data_dir: str | os.PathLike | None, pair_field: str | None = None) -> tuple[list[str], np.ndarray]:
    from jaxcompress.data import load_split
    from jaxcompress.data.text.records import as_text

    source = load_split(name, split, data_dir)
    batch = source.read(np.arange(len(source)))
    texts = [as_text(v) for v in batch[text_field]]
    if pair_field:  # a sentence pair: the words of both texts
        texts = [f"{a} {as_text(b)}" for a, b in zip(texts, batch[pair_field])]
    return texts, np.asarray(batch[label_field], np.int64)


def bag_of_words_baseline(name: str, train_split: str = "train", eval_split: str = "validation", *,
                          text_field: str = "text", label_field: str = "label",
                          data_dir: str | os.PathLike | None = None, pair_field: str | None = None) -> dict[str, Any]:
    """Accuracy of TF-IDF (1-2 grams) + logistic regression on ``eval_split``, fitted on ``train_split``.

    Args:
      name: a prepared dataset with a text feature and an integer (ClassLabel) label.
      train_split, eval_split: split names (TFDS slicing allowed).
      text_field, label_field: the features read.
      pair_field: the second text of a sentence pair, whose words join the first's.
      data_dir: TFDS data directory; None uses the default.

    Returns:
      ``{"accuracy", "majority_rate"`` (of ``eval_split``), ``"train_examples", "eval_examples",
      "recipe", "wall_time_s"}``.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    train_x, train_y = _texts_and_labels(name, train_split, text_field, label_field, data_dir, pair_field)
    eval_x, eval_y = _texts_and_labels(name, eval_split, text_field, label_field, data_dir, pair_field)
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    classifier = LogisticRegression(C=10, max_iter=1000).fit(vectorizer.fit_transform(train_x), train_y)
    accuracy = float((classifier.predict(vectorizer.transform(eval_x)) == eval_y).mean())
    return {"accuracy": accuracy, "majority_rate": float(np.bincount(eval_y).max() / len(eval_y)),
            "train_examples": len(train_y), "eval_examples": len(eval_y), "recipe": RECIPE,
            "wall_time_s": time.perf_counter() - start}


#: The pair recipe, as reported beside the number.
OVERLAP_RECIPE = ("LogisticRegression on the two passages' word overlap (Jaccard, shared words, log(1 + shared), "
                  "words of each), fitted on the train split")


def overlap_features(first: list[str], second: list[str]) -> np.ndarray:
    """``[n, 5]`` features of two passages' lower-cased word sets: Jaccard index, shared words,
    log(1 + shared), words of the first, words of the second."""
    import re

    rows = []
    for a, b in zip(first, second, strict=True):
        words_a, words_b = set(re.findall(r"\w+", a.lower())), set(re.findall(r"\w+", b.lower()))
        shared = len(words_a & words_b)
        rows.append([shared / max(1, len(words_a | words_b)), shared, np.log1p(shared), len(words_a), len(words_b)])
    return np.asarray(rows, np.float64).reshape(-1, 5)


def word_overlap_baseline(name: str, train_split: str = "train", eval_split: str = "validation", *,
                          text_field: str = "first", pair_field: str = "second", label_field: str = "label",
                          data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """A sentence-pair baseline a bag of words cannot be: logistic regression on how many words two
    passages share (:func:`overlap_features`). On a same-document task the joined bag of words sees
    the topic but not the overlap; this model sees only the overlap.

    Returns: the keys of :func:`bag_of_words_baseline`, with this recipe.
    """
    from sklearn.linear_model import LogisticRegression

    from jaxcompress.data import load_split
    from jaxcompress.data.text.records import as_text

    start = time.perf_counter()

    def read(split: str) -> tuple[np.ndarray, np.ndarray]:
        source = load_split(name, split, data_dir)
        batch = source.read(np.arange(len(source)))
        first = [as_text(v) for v in batch[text_field]]
        second = [as_text(v) for v in batch[pair_field]]
        return overlap_features(first, second), np.asarray(batch[label_field], np.int64)

    (train_x, train_y), (eval_x, eval_y) = read(train_split), read(eval_split)
    classifier = LogisticRegression(max_iter=2000).fit(train_x, train_y)
    accuracy = float((classifier.predict(eval_x) == eval_y).mean())
    return {"accuracy": accuracy, "majority_rate": float(np.bincount(eval_y).max() / len(eval_y)),
            "train_examples": len(train_y), "eval_examples": len(eval_y), "recipe": OVERLAP_RECIPE,
            "wall_time_s": time.perf_counter() - start}
