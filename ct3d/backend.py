"""TensorFlow, imported once and quietly.

TensorFlow's C++ runtime logs as it starts: oneDNN notices, CUDA probing ("Could not find
cuda drivers", and on a machine without a GPU an error line "failed call to cuInit"),
partly before its logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` alone does not hide them.
:func:`import_tensorflow` imports it with that start-up output held back (and shown if the
import fails), and sets ``TF_CPP_MIN_LOG_LEVEL=3`` so that the runtime stays quiet after;
a user who set ``TF_CPP_MIN_LOG_LEVEL`` sees everything TensorFlow says, as set.
ct3d calls it (or :func:`import_keras`) wherever it is about to use TensorFlow first
(training, prediction, Grad-CAM, the live training monitor, building models).

Example:
    >>> tf = import_tensorflow()
    >>> tf.constant(2).numpy().item()
    2
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType

__all__ = ["LOG_LEVEL_ENV", "holding_stderr", "import_keras", "import_tensorflow"]

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"


@contextlib.contextmanager
def holding_stderr() -> Iterator[None]:
    """Send what is written to file descriptor 2 (C++ code included) to a temporary file;
    write it out if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow() -> ModuleType:
    """The ``tensorflow`` module (imported with Keras), its start-up log quieted unless the
    user set ``TF_CPP_MIN_LOG_LEVEL``."""
    if "tensorflow" in sys.modules or LOG_LEVEL_ENV in os.environ:
        import tensorflow

        return tensorflow
    os.environ[LOG_LEVEL_ENV] = "3"
    with holding_stderr():
        import keras  # noqa: F401 - imported here so that its start-up output is held too
        import tensorflow

        tensorflow.config.list_physical_devices()
    return tensorflow


def import_keras() -> ModuleType:
    """The ``keras`` module, with TensorFlow imported first as :func:`import_tensorflow` does."""
    import_tensorflow()
    import keras

    return keras
