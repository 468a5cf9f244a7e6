"""The face population's aggregates on the wire: up in the outbox, and the region's merge down as a prior.

- Up: :mod:`edge.faces.adapt` stages a ``population`` event at each save of its aggregates; its body in the outbox
  is a stub (model id, count, version), so the edge's database never holds the aggregates in the clear.
  :func:`fill_aggregates` puts the current aggregates (decrypted from the store) into the newest such event of a
  batch as it is sent; older ones of the batch go as stubs (the console keeps only the newest per edge).
- Down: :func:`region_prior_fetcher` gives the adapter a call that fetches the region's merged aggregates
  (``GET /api/sync/population``: the other edges of the branch's region, same face model); None when there are
  none yet or the console cannot be reached (the adapter keeps what it had).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from edge.store.db import Store
from edge.store.population import load_population
from edge.sync.client import ConsoleClient, ConsoleError
from vision.errors import PopulationFileError
from vision.population import PopulationStats

if TYPE_CHECKING:
    from edge.sync.outbox import OutboxEvent

logger = logging.getLogger(__name__)

KIND = "population"


def fill_aggregates(store: Store, events: Sequence[OutboxEvent]) -> list[OutboxEvent]:
    """``events`` with the store's current aggregates in the newest ``population`` event's body."""
    newest = max((e.seq for e in events if e.kind == KIND), default=None)
    if newest is None:
        return list(events)
    out: list[OutboxEvent] = []
    for event in events:
        if event.seq == newest and isinstance(event.body, dict) and isinstance(event.body.get("model_id"), str):
            try:
                stats = load_population(store, event.body["model_id"])
            except PopulationFileError as exc:
                logger.error("the face population cannot be read to send it: %s", exc)
                stats = None
            if stats is not None:
                event = replace(event, body={**event.body, "count": stats.count,
                                             "stats": json.loads(stats.to_bytes())})
        out.append(event)
    return out


def region_prior_fetcher(client: ConsoleClient, model_id: str) -> Callable[[], PopulationStats | None]:
    def fetch() -> PopulationStats | None:
        try:
            body = client.population(model_id=model_id)
        except ConsoleError as exc:
            logger.warning("the region's face population was not fetched: %s", exc)
            return None
        if body is None:
            return None
        try:
            stats = PopulationStats.from_bytes(json.dumps(body.get("stats")).encode("utf-8"), model_id=model_id)
        except PopulationFileError as exc:
            logger.warning("the console's region population is not readable: %s", exc)
            return None
        logger.info("region %s's face population: %s faces from %s edges", body.get("region"), stats.count,
                    body.get("edges"))
        return stats

    return fetch
