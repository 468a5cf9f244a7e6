"""The face population adaptation as ``/healthz`` shows it to branch IT."""

from __future__ import annotations

from dataclasses import asdict

from edge.api.schemas import AdaptationHealthPublic
from edge.faces.adapt import PopulationAdapter


def adaptation_public(adapter: PopulationAdapter) -> AdaptationHealthPublic:
    return AdaptationHealthPublic(**asdict(adapter.state()))
