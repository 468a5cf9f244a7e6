"""The explicit registry that builds a face engine from its config.

Apart from ``base.py`` so that the engines, which import the protocol and configs from ``base``, are not
imported back by it (no import circle); the engines are imported only when one is built.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from vision.engines.base import DlibEngineConfig, FaceEngine
from vision.errors import EngineConfigError

EngineFactory = Callable[[BaseModel], FaceEngine]


def _build_dlib(config: BaseModel) -> FaceEngine:
    from vision.engines.dlib_engine import DlibFaceEngine

    if not isinstance(config, DlibEngineConfig):
        raise EngineConfigError(f"dlib engine needs DlibEngineConfig, got {type(config).__name__}")
    return DlibFaceEngine(config)


def _build_insightface(config: BaseModel) -> FaceEngine:
    from vision.engines.insightface_engine import InsightFaceEngine, InsightFaceEngineConfig

    if not isinstance(config, InsightFaceEngineConfig):
        raise EngineConfigError(f"insightface engine needs InsightFaceEngineConfig, got {type(config).__name__}")
    return InsightFaceEngine(config)


ENGINE_REGISTRY: dict[str, EngineFactory] = {"dlib": _build_dlib, "insightface": _build_insightface}


def build_engine(config: BaseModel) -> FaceEngine:
    engine_type = getattr(config, "type", None)
    if not isinstance(engine_type, str) or engine_type not in ENGINE_REGISTRY:
        raise EngineConfigError(f"unknown face engine type {engine_type!r}; known: {sorted(ENGINE_REGISTRY)}")
    return ENGINE_REGISTRY[engine_type](config)
