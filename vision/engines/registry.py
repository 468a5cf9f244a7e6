"""The explicit registries that build a face engine from its config, and the engine a camera uses from the
configured face detector (``face.detector``: the engine's own HOG, or BlazeFace in front of it).

Apart from ``base.py`` so that the engines, which import the protocol and configs from ``base``, are not
imported back by it (no import circle); the face engines are imported only when one is built.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from vision.engines.base import DlibEngineConfig, FaceEngine
from vision.engines.blazeface_frames import BlazeFaceFrameDetector, BlazeFaceFramesConfig
from vision.engines.blazeface_pack import PackedRegions
from vision.engines.camera_faces import CameraFaceEngine
from vision.engines.owner import on_owner
from vision.errors import EngineConfigError
from vision.single_face import FaceFitter

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
    """The face engine ``config`` names (by its ``type``)."""
    engine_type = getattr(config, "type", None)
    if not isinstance(engine_type, str) or engine_type not in ENGINE_REGISTRY:
        raise EngineConfigError(f"unknown face engine type {engine_type!r}; known: {sorted(ENGINE_REGISTRY)}")
    return ENGINE_REGISTRY[engine_type](config)


# ------------------------------------------------------------------------ camera face detectors

CameraEngineFactory = Callable[[FaceEngine, BlazeFaceFramesConfig], FaceEngine]


def _camera_hog(engine: FaceEngine, settings: BlazeFaceFramesConfig) -> FaceEngine:
    return engine  # the engine's own detector


def _camera_blazeface(engine: FaceEngine, settings: BlazeFaceFramesConfig) -> FaceEngine:
    if not on_owner(engine, lambda own: isinstance(own, FaceFitter)):
        raise EngineConfigError(f"face detector 'blazeface' needs an engine that fits its landmarks on other "
                                f"detectors' boxes (dlib); engine {engine.model_id} cannot")
    frames = BlazeFaceFrameDetector(engine.min_face_px, settings)
    return CameraFaceEngine(engine, frames, PackedRegions(frames), "blazeface")


DETECTOR_REGISTRY: dict[str, CameraEngineFactory] = {"hog": _camera_hog, "blazeface": _camera_blazeface}


def build_camera_engine(engine: FaceEngine, detector: str,
                        settings: BlazeFaceFramesConfig | None = None) -> FaceEngine:
    """The engine the cameras use: ``engine`` itself for ``hog``, or ``engine`` behind the ``blazeface`` frame
    detector (:mod:`vision.engines.camera_faces`). Raises :class:`EngineConfigError` for an unknown name."""
    from vision.engines.blazeface_frames import BlazeFaceFramesConfig

    if detector not in DETECTOR_REGISTRY:
        raise EngineConfigError(f"unknown face detector {detector!r}; known: {sorted(DETECTOR_REGISTRY)}")
    return DETECTOR_REGISTRY[detector](engine, settings or BlazeFaceFramesConfig())
