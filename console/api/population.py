"""``GET /api/sync/population``: the merged face population of the calling edge's region, for its prior.

Edge token only; the region is the caller's branch's (now), the face model the one it names, and the caller's own
aggregates are left out (the box merges its own faces itself). 404 ``no_population`` while no other edge of the
region has sent any for that model.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query

from console.api.deps import Ctx
from console.api.sync import EdgeDep
from console.errors import ConsoleError
from console.population import PopulationCipher, region_population

router = APIRouter(prefix="/api/sync", tags=["sync"])


@router.get("/population")
def get_population(ctx: Ctx, edge: EdgeDep,
                   model_id: Annotated[str, Query(min_length=1, max_length=128)]) -> dict[str, Any]:
    """The exact merge (count, mean, scatter) of ``model_id``'s aggregates over the other edges of the region."""
    with ctx.db.transaction() as session:
        found = region_population(session, PopulationCipher(ctx.key), region=edge.branch_region, model_id=model_id,
                                  exclude_edge=edge.edge_id)
    if found is None:
        raise ConsoleError("no_population", f"本区域尚无人脸群体统计 / no other edge of region {edge.branch_region!r} "
                                            f"has sent face population aggregates of model {model_id!r}", 404)
    return {"region": found.region, "model_id": found.model_id, "edges": found.edges, "count": found.stats.count,
            "stats": json.loads(found.stats.to_bytes())}
