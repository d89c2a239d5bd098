"""The custom Keras layers of slice models (:mod:`ct3d.models.slices`), registered for
loading saved models (:func:`ct3d.models.load_model` imports this module first).

Example:
    >>> import numpy as np
    >>> SliceNeighbours()(np.arange(3.0).reshape(1, 3, 1, 1, 1)).numpy()[0, :, 0, 0].tolist()
    [[0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 2.0, 2.0]]
"""

from __future__ import annotations

from typing import Any

from ct3d.backend import import_keras

keras = import_keras()

__all__ = ["GatedAttention", "SliceEncoder", "SliceNeighbours"]


@keras.saving.register_keras_serializable("ct3d")
class SliceEncoder(keras.layers.TimeDistributed):
    """``TimeDistributed`` that runs its model once on every slice of the batch together:
    (B, D, ...) is folded into (B * D, ...), encoded, and unfolded to (B, D, features).

    Keras' own ``TimeDistributed`` calls the model once per slice position when the number of
    slices is fixed, so a BatchNormalization inside it normalises each position over the B
    scans only, and its moving averages end up as the statistics of the last position: a
    model that predicts well in training and poorly in inference. Folded, BatchNorm sees
    all B * D slices at once, in training and in its moving averages alike.
    """

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        from keras import ops

        batch, depth = ops.shape(inputs)[0], inputs.shape[1]
        folded = ops.reshape(inputs, (-1, *inputs.shape[2:]))
        encoded = self.layer(folded, training=training)
        return ops.reshape(encoded, (batch, depth, *encoded.shape[1:]))


@keras.saving.register_keras_serializable("ct3d")
class SliceNeighbours(keras.layers.Layer):
    """(B, D, W, H, 1) slices -> (B, D, W, H, 3): slices k-1, k, k+1 (edges repeated)."""

    def call(self, x: Any) -> Any:
        from keras import ops

        before = ops.concatenate([x[:, :1], x[:, :-1]], axis=1)
        after = ops.concatenate([x[:, 1:], x[:, -1:]], axis=1)
        return ops.concatenate([before, x, after], axis=-1)

    def compute_output_shape(self, shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*shape[:-1], 3 * shape[-1])


@keras.saving.register_keras_serializable("ct3d")
class GatedAttention(keras.layers.Layer):
    """Gated attention weights over a sequence: (B, D, F) features -> (B, D) softmax weights.

    ``a_k = softmax_k(w . (tanh(V h_k) * sigmoid(U h_k)))`` (Ilse, Tomczak & Welling 2018).
    """

    def __init__(self, units: int = 128, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        layers = keras.layers
        self.units = units
        self.v = layers.Dense(units, activation="tanh", name="v")
        self.u = layers.Dense(units, activation="sigmoid", name="u")
        self.w = layers.Dense(1, name="w")

    def build(self, shape: tuple[Any, ...]) -> None:
        self.v.build(shape)
        self.u.build(shape)
        self.w.build((*shape[:-1], self.units))

    def call(self, h: Any) -> Any:
        from keras import ops

        scores = self.w(self.v(h) * self.u(h))[..., 0]
        return ops.softmax(ops.cast(scores, "float32"), axis=-1)

    def compute_output_shape(self, shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return shape[:-1]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}
