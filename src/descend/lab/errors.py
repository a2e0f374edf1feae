"""The lab's own error type.

A `LabError` (or a `ValueError` from validating a spec) is a problem the user can fix: its
message names what is wrong and what is allowed. The CLI prints it in one or two lines
and exits with code 2, without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LabError(Exception):
    """Bad input, or a state of a run folder or a service that the user has to act on."""
