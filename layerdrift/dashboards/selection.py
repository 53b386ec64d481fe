"""What one browser session has selected across tabs: the residual point and the concept.

The shell makes one ``Selection`` per session and hands it to every experiment's ``tabs``; a tab that shows a layer or
a concept follows it and sets it (clicking a depth on the Localisation tab moves the Drift tab's layer player).
"""

from __future__ import annotations

import param


class Selection(param.Parameterized):
    """The residual point (index into the reference's points) and the concept (index into the prompt set)."""

    layer = param.Integer(default=0, bounds=(0, None))
    concept = param.Integer(default=0, bounds=(0, None))


def follow(selection: Selection, state: param.Parameterized, names: tuple[str, ...] = ("layer", "concept")) -> None:
    """Keep ``state``'s parameters ``names`` and the selection's equal, each way (the selection starts at the
    state's values)."""
    selection.param.update(**{n: getattr(state, n) for n in names})
    selection.param.watch(lambda e: setattr(state, e.name, e.new), list(names))
    state.param.watch(lambda e: setattr(selection, e.name, e.new), list(names))
