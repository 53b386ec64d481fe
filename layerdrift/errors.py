"""The one exception type a user sees: a problem they can act on, said in one sentence."""

from __future__ import annotations


class LayerdriftError(Exception):
    """A user-facing failure: what went wrong, where, and what to do.

    The CLI prints ``str(error)`` and exits non-zero; tracebacks only with ``--debug``.
    """


class LayerdriftWarning(UserWarning):
    """Something a user should know that does not stop the run (printed as one line by the CLI)."""
