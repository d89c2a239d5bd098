"""Model builders: registered plugins returning an uncompiled Keras model.

A builder takes the reserved parameters ``input_shape`` (``(W, H, D, C)``) and ``classes``
(both supplied by the pipeline) plus its own keyword parameters, and returns a model named
after the plugin; it declares the smallest input it accepts (``min_input``) when registered,
so that a scenario is checked before any scan is read. Every builder shares one output head
(:mod:`ct3d.models.heads`): a layer ``probability`` with one sigmoid unit for 2 classes or
``classes`` softmax units for more; and a ``weights`` parameter: ``None`` or a local
``.weights.h5`` file loaded after building. :func:`build_model` is the one way to build one.

Builders: ``baseline_3dcnn`` and ``modified_3dcnn`` (:mod:`~ct3d.models.cnn3d`, the thesis'
plain CNNs), ``resnet3d`` (:mod:`~ct3d.models.resnet3d`), ``densenet3d``
(:mod:`~ct3d.models.densenet3d`), ``inflated3d`` (:mod:`~ct3d.models.inflated`: ResNet-50
inflated from 2D ImageNet kernels), and the slice models ``slice2d`` and ``slice25d``
(:mod:`~ct3d.models.slices`: a 2D backbone of :mod:`~ct3d.models.backbones` on every slice,
aggregated over slices).

Example:
    >>> build_model("modified_3dcnn", input_shape=(64, 64, 48, 1)).count_params()
    214817
    >>> build_model("modified_3dcnn", input_shape=(64, 64, 48, 1), classes=3).output_shape
    (None, 3)
"""

from ct3d.models import backbones, cnn3d, densenet3d, heads, inflated, resnet3d, slices
from ct3d.models.build import build_model, min_input
from ct3d.models.loading import load_model

__all__ = ["backbones", "build_model", "cnn3d", "densenet3d", "heads", "inflated", "load_model",
           "min_input", "resnet3d", "slices"]
