"""The one base class of every error ct3d reports to its users.

A :class:`Ct3dError` says what is wrong with something the user gave (a scenario, a scan, a
folder, a download) in a message that names it; the ``ct3d`` command prints that message on
one line and exits with status 2, without a traceback. Anything else escaping ct3d is a bug.
Each subclass also derives from the built-in exception it refines (``ValueError``,
``RuntimeError``, ...), so ``except ValueError`` keeps catching a bad value.

Example:
    >>> from ct3d.scenario import ScenarioError
    >>> issubclass(ScenarioError, Ct3dError), issubclass(ScenarioError, ValueError)
    (True, True)
"""

from __future__ import annotations

__all__ = ["Ct3dError"]


class Ct3dError(Exception):
    """A problem with the user's input or environment, stated in a message that names it."""
