"""Flax Linen models whose parameters and activations carry logical axis names."""

from jaxcompress.nn.cnn import CNNClassifier
from jaxcompress.nn.mlp import MLPClassifier

__all__ = ["CNNClassifier", "MLPClassifier"]
