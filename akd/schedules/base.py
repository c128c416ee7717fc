"""Contract of weight schedules.

``schedule(epoch) -> float`` is the factor applied to a term's weight during epoch ``epoch`` (0-based: the
first epoch is 0).  It must be a pure function of ``epoch`` (no state), which is what makes a resumed run
bit-identical to an uninterrupted one.  Factors are >= 0.
"""

from __future__ import annotations


class WeightSchedule:
    #: True when the factor is 1 for every epoch (left out of the term's resolved spec)
    constant: bool = False

    def __call__(self, epoch: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError
