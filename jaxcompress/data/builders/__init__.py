"""TFDS builders of the embedded datasets, generated offline from installed packages.

Importing a builder module has no side effect: the classes are kept out of
TFDS's global registry and are instantiated by :mod:`jaxcompress.data`.
"""
