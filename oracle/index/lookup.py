"""BME_N looked up in an agreed history: the index stage's formulas applied on request.

Pure. The index stage stores BME_N for its configured N at every agreed
epoch; the HTTP API's ``/v1/index/{n}`` (``oracle.api.handlers``) serves those
stored values as they are, and for any other N or epoch asks this module,
which computes the value exactly from the agreed epochs' targets with the
same ``oracle.index.bme`` formulas. Answers it cannot give (too few epochs, a
gap in the window, no epoch before a time) raise ``IndexUnavailable`` with a
message meant for the API's 404 body.
"""

from __future__ import annotations

from collections.abc import Sequence

from oracle.errors import IndexUnavailable
from oracle.index.bme import DAYS_PER_EPOCH, BmeValue, EpochTarget, bme, epoch_at_time


def epoch_in_force(targets: Sequence[EpochTarget], at: int | None) -> int:
    """The latest epoch of ``targets`` (non-empty, sorted), or the one in force at time ``at``."""
    return targets[-1].epoch if at is None else epoch_at_time(targets, at)


def bme_at_epoch(n_days: int, epoch: int, targets: Sequence[EpochTarget]) -> BmeValue:
    """BME_N at ``epoch`` from the agreed ``targets``; every epoch of its window must be there.

    ``n_days`` is a positive multiple of 14 (checked by the caller).
    """
    epochs = n_days // DAYS_PER_EPOCH
    if epochs > epoch + 1:  # checked first: N may ask for far more epochs than exist
        raise IndexUnavailable(
            f"BME{n_days} at epoch {epoch} needs {epochs} epochs; {epoch + 1} exist"
        )
    by_epoch = {t.epoch: t for t in targets}
    window = [by_epoch[e] for e in range(epoch - epochs + 1, epoch + 1) if e in by_epoch]
    if len(window) != epochs:
        raise IndexUnavailable(
            f"BME{n_days} at epoch {epoch} needs agreed epochs {epoch - epochs + 1}..{epoch}"
        )
    return bme(n_days, window)
