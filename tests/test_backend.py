"""TensorFlow imported quietly: its start-up log is held back unless the user asked for it,
and shown when the import fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

IMPORT = ("from ct3d.backend import import_tensorflow\n"
          "import os\n"
          "tf = import_tensorflow()\n"
          "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], int(tf.constant(1) + 1))\n")


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_tensorflow_starts_without_a_word_on_stderr() -> None:
    proc = _python(IMPORT)
    assert proc.returncode == 0 and proc.stdout == "3 2\n"
    assert proc.stderr == ""


def test_a_log_level_the_user_set_is_left_alone() -> None:
    proc = _python(IMPORT, TF_CPP_MIN_LOG_LEVEL="1")
    assert proc.returncode == 0 and proc.stdout == "1 2\n"


def test_what_was_held_back_is_shown_when_the_block_fails() -> None:
    code = ("import os\nfrom ct3d.backend import holding_stderr\n"
            "with holding_stderr():\n    os.write(2, b'held back\\n')\n"
            "try:\n    with holding_stderr():\n        os.write(2, b'shown\\n')\n"
            "        raise ImportError('no tensorflow')\n"
            "except ImportError:\n    print('caught')\n")
    proc = _python(code)
    assert (proc.stdout, proc.stderr) == ("caught\n", "shown\n")


def test_the_backend_is_read_from_the_environment_then_keras_json(tmp_path: Path) -> None:
    from ct3d.backend import keras_backend

    assert keras_backend({"KERAS_BACKEND": "torch", "KERAS_HOME": str(tmp_path)}) == "torch"
    assert keras_backend({"KERAS_HOME": str(tmp_path)}) == "tensorflow"
    (tmp_path / "keras.json").write_text('{"backend": "jax", "floatx": "float32"}')
    assert keras_backend({"KERAS_HOME": str(tmp_path)}) == "jax"
    (tmp_path / "keras.json").write_text("{not json")
    assert keras_backend({"KERAS_HOME": str(tmp_path)}) == "tensorflow"


def test_on_jax_import_keras_leaves_tensorflow_alone() -> None:
    code = ("import sys\nfrom ct3d.backend import import_keras\nkeras = import_keras()\n"
            "print(keras.backend.backend(), 'tensorflow' in sys.modules)\n")
    proc = _python(code, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    if proc.returncode != 0 and "No module named 'jax'" in proc.stderr:
        pytest.skip("jax is not installed")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "jax False\n"
