"""Every router of the console, in the order they are mounted: the JSON API first, the web pages last."""

from __future__ import annotations

from fastapi import APIRouter

from console.api import (
    audit,
    auth,
    branches,
    clips,
    edges,
    events,
    imports,
    persons,
    photos,
    plates_consent,
    population,
    stats,
    sync,
    users,
)
from console.web import pages

ALL: list[APIRouter] = [
    auth.router, users.router, audit.router,  # sign-in, users and tokens, the audit log
    branches.router, edges.router,  # branches, edge registration codes and revocation
    persons.router, photos.router, plates_consent.router, imports.router,  # enrolment
    sync.router, events.router, population.router,  # the edges' API: gallery down, events up, region prior
    clips.router, stats.router,  # clips and verdicts at the centre, the bank view
    pages.router,  # the web UI, after the API
]
