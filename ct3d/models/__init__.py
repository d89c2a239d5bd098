"""Model builders: registered plugins returning an uncompiled Keras model.

A builder takes the reserved parameters ``input_shape`` (``(W, H, D, C)``) and ``classes``
(both supplied by the pipeline) plus its own keyword parameters, and returns a model named
after the plugin. Every builder shares one output head (:mod:`ct3d.models.heads`): a layer
``probability`` with one sigmoid unit for 2 classes or ``classes`` softmax units for more;
and a ``weights`` parameter: ``None`` or a local ``.weights.h5`` file loaded after building.

Builders: ``baseline_3dcnn`` and ``modified_3dcnn`` (:mod:`~ct3d.models.cnn3d`, the thesis'
plain CNNs), ``resnet3d`` (:mod:`~ct3d.models.resnet3d`) and ``densenet3d``
(:mod:`~ct3d.models.densenet3d`).

Example:
    >>> from ct3d.registry import MODELS
    >>> MODELS.create("modified_3dcnn", input_shape=(64, 64, 48, 1)).count_params()
    214817
    >>> MODELS.create("modified_3dcnn", input_shape=(64, 64, 48, 1), classes=3).output_shape
    (None, 3)
"""

from ct3d.models import cnn3d, densenet3d, heads, resnet3d

__all__ = ["cnn3d", "densenet3d", "heads", "resnet3d"]
