"""Model builders: registered plugins returning an uncompiled Keras model.

A builder takes ``input_shape`` (``(W, H, D, C)``, supplied by the pipeline from the
preprocessed data) plus its own keyword parameters, and returns a model named after the
plugin whose output is one sigmoid probability.

Example:
    >>> from ct3d.registry import MODELS
    >>> MODELS.create("modified_3dcnn", input_shape=(64, 64, 48, 1)).count_params()
    214817
"""

from ct3d.models import cnn3d

__all__ = ["cnn3d"]
