"""Named chains: well-known preprocessing recipes composed of registered steps."""

from __future__ import annotations

from ct3d.preprocess.geometry import resize, rotate90
from ct3d.preprocess.intensity import hu_window
from ct3d.registry import preprocessor
from ct3d.volume import Step, Volume


@preprocessor("keras_example", output_shape=lambda _, p: p["shape"])
def keras_example(
    low: float = -1000.0, high: float = 400.0, shape: tuple[int, int, int] = (128, 128, 64)
) -> Step:
    """The Keras 3D-CT example's (and thesis') preprocessing: hu_window, rotate90, resize.

    Clip HU to [low, high] and scale to [0, 1], turn the slices a quarter (exactly, like
    ``scipy.ndimage.rotate(v, 90, reshape=False)`` on square slices), then resize linearly
    to ``shape``.

    Args:
        low: lowest HU kept (lower values become 0).
        high: highest HU kept (higher values become 1); must be above low.
        shape: output size (W, H, D) in voxels after the quarter turn, each >= 1.

    Example:
        >>> import numpy as np
        >>> v = Volume(np.full((8, 8, 4), -300.0, np.float32), (1.0, 1.0, 1.0), np.eye(4), "demo")
        >>> out = keras_example(shape=(4, 4, 2))(v)
        >>> out.shape, float(out.array.max())
        ((4, 4, 2), 0.5)
    """
    if not high > low or min(shape) < 1:
        raise ValueError(f"keras_example needs high > low and a positive shape; received "
                         f"low={low}, high={high}, shape={shape}")
    steps = (hu_window(low, high), rotate90(1), resize(shape, 1))

    def apply(volume: Volume) -> Volume:
        for step in steps:
            volume = step(volume)
        return volume

    return apply
