"""The Keras backend, and TensorFlow imported once and quietly.

ct3d's models, augmenters and random numbers are plain Keras: they run on the backend
Keras is configured with (``KERAS_BACKEND``, else ``~/.keras/keras.json``, else
TensorFlow), read by :func:`keras_backend` without importing Keras. :func:`import_keras`
imports Keras and, on the TensorFlow backend only, TensorFlow first as below; on JAX or
PyTorch, TensorFlow need not be installed.

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
    >>> keras_backend({"KERAS_BACKEND": "jax"})
    'jax'
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType

__all__ = ["BACKENDS", "LOG_LEVEL_ENV", "holding_stderr", "import_keras", "import_tensorflow",
           "keras_backend"]

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
BACKENDS = ("tensorflow", "jax", "torch")
"""The Keras backends ct3d runs on."""


def keras_backend(environ: Mapping[str, str] | None = None) -> str:
    """The backend Keras uses or will use: that of an imported Keras, else ``KERAS_BACKEND``,
    else the ``backend`` of ``$KERAS_HOME/keras.json`` (default ``~/.keras``), else
    ``tensorflow``; Keras is not imported."""
    if environ is None and "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    env = os.environ if environ is None else environ
    if env.get("KERAS_BACKEND"):
        return env["KERAS_BACKEND"]
    config = Path(env.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return str(json.loads(config.read_text()).get("backend", "tensorflow"))
    except (OSError, ValueError):
        return "tensorflow"


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
    """The ``keras`` module; on the TensorFlow backend, TensorFlow is imported first as
    :func:`import_tensorflow` does."""
    if keras_backend() == "tensorflow":
        import_tensorflow()
    import keras

    return keras
