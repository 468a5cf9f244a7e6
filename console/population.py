"""Face population aggregates of the edges, kept encrypted and merged per region and face model.

Each edge box learns the count, mean and scatter of the faces its cameras embed (:mod:`edge.faces.adapt`) and
sends them up as a ``population`` outbox event at each save; never an individual embedding. Here:

- :func:`split_aggregates` takes the aggregates out of a batch before it is stored, so ``edge_events`` keeps only
  a stub (model id, count, version) and no float array is ever written in the clear;
- :func:`keep_aggregates` stores the newest aggregates per edge, a Fernet token under a key derived from the data
  key for this purpose alone (they carry no person, yet a mean over a few faces is close to each of them). An
  event replayed after a newer one of the same store epoch changes nothing, so the ingest stays idempotent;
- :func:`region_population` merges, exactly (Chan's parallel update, :class:`vision.population.PopulationStats`),
  the aggregates of one face model from the edges of the branches in a region *now*: a branch moved to another
  region leaves its old region's merge at once. Revoked edges are left out.

Erasure does not touch them: they name no person.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.db import utcnow
from console.sync.auth import EdgeCaller
from console.sync.events import InEvent, insert_for
from console.tables import Branch, Edge, EdgePopulation
from vault.keys import DataKey
from vision.errors import PopulationFileError, PopulationInputError, PopulationModelError
from vision.population import PopulationStats

logger = logging.getLogger(__name__)

KIND = "population"
PURPOSE = "edge-population-stats"
MAX_DIM = 2048


class PopulationCipher:
    """Fernet under a key derived from the data key for population aggregates alone."""

    def __init__(self, key: DataKey) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(key.derive(PURPOSE)))

    def encrypt(self, stats: PopulationStats) -> bytes:
        return self._fernet.encrypt(stats.to_bytes())

    def decrypt(self, token: bytes, model_id: str) -> PopulationStats:
        return PopulationStats.from_bytes(self._fernet.decrypt(token), model_id=model_id)


@dataclass(frozen=True, slots=True)
class Aggregate:
    seq: int
    stats: PopulationStats


def _parse(body: Any) -> PopulationStats | None:
    if not isinstance(body, dict) or not isinstance(body.get("stats"), dict):
        return None
    try:
        stats = PopulationStats.from_bytes(json.dumps(body["stats"]).encode("utf-8"))
    except (PopulationFileError, PopulationInputError, ValueError, TypeError) as exc:
        logger.warning("a population event's aggregates are not readable, not kept: %s", exc)
        return None
    if stats.dim > MAX_DIM or stats.count < 2 or stats.model_id != body.get("model_id"):
        logger.warning("a population event's aggregates are out of bounds or name another model, not kept")
        return None
    return stats


def split_aggregates(events: Sequence[InEvent]) -> tuple[list[InEvent], list[Aggregate]]:
    """The events with every ``population`` body reduced to its stub, and the aggregates they carried."""
    out: list[InEvent] = []
    found: list[Aggregate] = []
    for event in events:
        if event.kind != KIND:
            out.append(event)
            continue
        stats = _parse(event.body)
        if stats is not None:
            found.append(Aggregate(event.seq, stats))
        body = event.body if isinstance(event.body, dict) else {}
        stub = {k: body[k] for k in ("model_id", "count", "version") if isinstance(body.get(k), str | int)}
        out.append(replace(event, body=stub))
    return out, found


def keep_aggregates(session: Session, cipher: PopulationCipher, edge: EdgeCaller, epoch: str,
                    aggregates: Sequence[Aggregate]) -> bool:
    """Keep the newest of ``aggregates`` as the edge's (unless a newer event of this epoch is kept already)."""
    if not aggregates:
        return False
    newest = max(aggregates, key=lambda a: a.seq)
    kept = session.get(EdgePopulation, edge.edge_id, with_for_update=True)
    if kept is not None and kept.epoch == epoch and kept.seq >= newest.seq:
        return False
    values = {"model_id": newest.stats.model_id, "count": newest.stats.count, "stats": cipher.encrypt(newest.stats),
              "epoch": epoch, "seq": newest.seq, "updated_at": utcnow()}
    stmt = insert_for(session, EdgePopulation.__table__).values(edge_id=edge.edge_id, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["edge_id"], set_=values))
    return True


@dataclass(frozen=True, slots=True)
class RegionPopulation:
    region: str
    model_id: str
    edges: int
    stats: PopulationStats


def region_population(session: Session, cipher: PopulationCipher, *, region: str, model_id: str,
                      exclude_edge: int | None = None) -> RegionPopulation | None:
    """The exact merge of ``model_id``'s aggregates over the region's live edges (``exclude_edge`` left out: a box
    merges the region with its own faces itself); None when no edge of the region has any."""
    rows = session.execute(select(EdgePopulation.edge_id, EdgePopulation.stats)
                           .join(Edge, Edge.id == EdgePopulation.edge_id).join(Branch, Branch.id == Edge.branch_id)
                           .where(Branch.region == region, EdgePopulation.model_id == model_id,
                                  Edge.revoked_at.is_(None)).order_by(EdgePopulation.edge_id)).all()
    merged: PopulationStats | None = None
    edges = 0
    for edge_id, token in rows:
        if edge_id == exclude_edge:
            continue
        try:
            stats = cipher.decrypt(token, model_id)
        except (InvalidToken, PopulationFileError, PopulationModelError) as exc:
            logger.error("edge %s's population aggregates cannot be read, left out of %s: %s", edge_id, region, exc)
            continue
        if merged is not None and stats.dim != merged.dim:
            logger.error("edge %s's population aggregates are %s-d, not %s-d: left out", edge_id, stats.dim, merged.dim)
            continue
        merged = stats if merged is None else merged.merge(stats)
        edges += 1
    return None if merged is None else RegionPopulation(region, model_id, edges, merged)
