"""Flax Linen models whose parameters and activations carry logical axis names, with their configs.

    from jaxcompress.nn import AlbertConfig, AlbertForPreTraining, MLPClassifier, SpeechEncoder

References:
  Lan et al., "ALBERT", ICLR 2020; Devlin et al., "BERT", NAACL 2019; Xu et al.,
  "How Powerful are Graph Neural Networks?", ICLR 2019; Kipf & Welling, ICLR 2017.
"""

from jaxcompress.nn.albert import (
                                   AlbertConfig,
                                   AlbertEncoder,
                                   AlbertForPreTraining,
                                   AlbertForSequenceClassification,
                                   AlbertForTokenClassification,
)
from jaxcompress.nn.classifiers import build_classifier
from jaxcompress.nn.cnn import CNNClassifier, CNNConfig
from jaxcompress.nn.graph import GCNLayer, GINLayer, GraphEncoder, ProjectionHead
from jaxcompress.nn.mlp import MLPClassifier, MLPConfig
from jaxcompress.nn.speech import MaskedPredictionModel, SpeechEncoder, SpeechEncoderConfig
from jaxcompress.nn.transformer import SelfAttention, TransformerBlock

__all__ = [
    "AlbertConfig", "AlbertEncoder", "AlbertForPreTraining", "AlbertForSequenceClassification",
    "AlbertForTokenClassification", "CNNClassifier", "CNNConfig", "GCNLayer", "GINLayer", "GraphEncoder",
    "MLPClassifier", "MLPConfig", "MaskedPredictionModel", "ProjectionHead", "SelfAttention", "SpeechEncoder",
    "SpeechEncoderConfig", "TransformerBlock", "build_classifier",
]
