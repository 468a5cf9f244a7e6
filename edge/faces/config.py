"""The faces' config section: engine, voter, enrolment checks, and the VIP arrival rule."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vision.engines.base import DlibEngineConfig
from vision.engines.blazeface_frames import BlazeFaceFramesConfig
from vision.engines.camera_faces import FaceDetectorName
from vision.engines.insightface_engine import InsightFaceEngineConfig
from vision.population_choice import DEFAULT_MIN_PAIR_RATE
from vision.quality import ENROL_MAX_ABS_YAW, ENROL_MIN_BLAZEFACE_SCORE, ENROL_MIN_HOG_SCORE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VoterSettings(_Strict):
    """Defaults from `smartbranch faces calibrate --target-fpir 0.001` on the East-Asian development set
    (dlib engine with flip TTA, model_id dlib_resnet_v1_flip): no stranger track of 244 was decided as a
    VIP (95 % upper bound 1.2 %), hit rate 0.351. (Without TTA it was 0.9563 and hit rate 0.30; with flip
    TTA 0.9563 lets 1 of 244 stranger tracks through.)"""

    threshold: float = Field(default=0.9585, ge=-1, le=1,
                             description="Cosine similarity a face must reach to vote for a person. The "
                                         "default was calibrated for the dlib engine with flip TTA (the "
                                         "default) on East-Asian faces (smartbranch faces calibrate "
                                         "--target-fpir 0.001); another engine or TTA needs its own.")
    min_margin: float = Field(default=0.02, ge=0, le=2, description="Lead over the runner-up person.")
    min_votes: int = Field(default=3, ge=1, le=20, description="Votes a track needs before a decision.")
    max_observations: int = Field(default=8, ge=1, le=100,
                                  description="Embeddings per track before it is settled as unknown.")


class AdaptationSettings(_Strict):
    """Learning the branch's face population (:mod:`edge.faces.adapt`): aggregates only, refitted, guarded."""

    learn: bool = Field(default=True,
                        description="Keep the running count, mean and scatter of every live face the entrance and "
                                    "lobby cameras embed (never an individual embedding), encrypted in the store.")
    apply: bool = Field(default=False,
                        description="Compare faces in the fitted population space once the choice and the guard "
                                    "accept it. Off by default: the guard's estimate of the stranger match rate is "
                                    "not validated on real faces (python -m bench.face_adapt_guard: its score map "
                                    "lets more strangers over the threshold than it estimates), and the track hit "
                                    "rate did not rise; turn it on where smartbranch faces calibrate --adapt shows "
                                    "a gain on the branch's faces.")
    region_prior: bool = Field(default=False,
                               description="While the box has seen fewer than min_faces faces of its own, start "
                                           "from its region's merged population (fetched from the console: the "
                                           "other branches' aggregates, same face model), merged with its own "
                                           "faces, so that a new branch adapts from day one. Its own aggregates "
                                           "go up to the console either way (never an individual embedding).")
    min_faces: int = Field(default=256, ge=2, le=1_000_000,
                           description="Live faces seen before the first fit; fewer keep the box unadapted. 256 is "
                                       "twice the dlib embedding's dimension.")
    refit_interval_s: float = Field(default=3600.0, ge=0, le=30 * 86400,
                                    description="Seconds between refits (and saves of the aggregates) once the "
                                                "first fit was made.")
    shrinkage: float = Field(default=0.8, ge=0, le=1,
                             description="Share of the identity in the shrunk covariance (1 only centres, 0 "
                                         "whitens fully); 0.8 was chosen by python -m bench.face_population.")
    max_fpir_ratio: float = Field(default=1.0, gt=0, le=100,
                                  description="Guard: the largest allowed ratio of the estimated stranger match "
                                              "rate at the calibrated threshold, adapted over unadapted. 1 means "
                                              "adaptation may never raise it.")
    min_pair_rate: float = Field(default=DEFAULT_MIN_PAIR_RATE, gt=0, lt=1,
                                 description="How much to adapt: the box whitens only when two strangers of its "
                                             "population would match at the calibrated threshold at least this "
                                             "often, estimated from the aggregates (a normal tail that overstates "
                                             "the counted rate); below it the population sits like the model's "
                                             "native one and the box stays unadapted. Chosen by python -m "
                                             "bench.face_adapt_guard on development halves.")


class VisitShotSettings(_Strict):
    """Templates that grow from confirmed visits (:mod:`edge.faces.visit_shots`)."""

    enabled: bool = Field(default=True,
                          description="Add a confirmed visit's best live shot to the VIP's template, only for a "
                                      "person whose consent (recorded at the console, carried by the sync) covers "
                                      "template improvement from live visits (visit_template); a person without "
                                      "that purpose never gets a shot.")
    max_per_person: int = Field(default=3, ge=1, le=20,
                                description="Live shots kept per person; a new one replaces the oldest. The "
                                            "template always includes every enrolment photo as well.")
    min_score_gain: float = Field(default=0.01, ge=0, le=1,
                                  description="Safe match: the shot's score must exceed the voter threshold by "
                                              "this much.")
    min_margin: float = Field(default=0.04, ge=0, le=2,
                              description="Safe match: the shot's lead over the runner-up person.")
    min_template_cosine: float = Field(default=0.97, ge=-1, le=1,
                                       description="A shot is refused when the template with it would have a cosine "
                                                   "below this with the template of the enrolment photos alone.")
    mark_score_slack: float = Field(default=0.02, ge=0, le=1,
                                    description="A stranger's crop marked as a VIP (\"this was X\") was not decided: "
                                                "its score against that VIP may be this much below the voter "
                                                "threshold, and it must still lead every other person by "
                                                "min_margin.")
    pending_max: int = Field(default=64, ge=1, le=10_000,
                             description="Unconfirmed visits whose shot is held in memory; the oldest is dropped.")
    pending_ttl_s: float = Field(default=1800.0, gt=0, le=86400,
                                 description="An unconfirmed visit's shot is dropped after this many seconds.")


class StrangerCropSettings(_Strict):
    """Recent unknown faces' best crops, for a manager to mark a missed VIP (:mod:`edge.faces.stranger_crops`)."""

    keep_minutes: float = Field(default=0.0, ge=0, le=24 * 60,
                                description="Minutes an unknown track's best face crop is kept (an image, encrypted; "
                                            "never an embedding) so that a lobby manager can mark it as a missed VIP. "
                                            "0 (the default) keeps none; older crops are purged every minute and at "
                                            "start.")
    max_crops: int = Field(default=200, ge=1, le=10_000, description="Crops kept at most; the oldest go first.")


class FaceConfig(_Strict):
    @model_validator(mode="before")
    @classmethod
    def _default_engine_type(cls, data: object) -> object:
        """``type`` may be left out of ``face.engine``; it then means the default, dlib."""
        if isinstance(data, dict) and isinstance(data.get("engine"), dict) and "type" not in data["engine"]:
            return {**data, "engine": {**data["engine"], "type": "dlib"}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _default_detector(cls, data: object) -> object:
        """``detector`` left out means BlazeFace with the dlib engine and the engine's own detector with another."""
        if not isinstance(data, dict) or "detector" in data:
            return data
        engine = data.get("engine")
        engine_type = engine.get("type", "dlib") if isinstance(engine, dict) else getattr(engine, "type", "dlib")
        return data if engine_type == "dlib" else {**data, "detector": "hog"}

    engine: Annotated[DlibEngineConfig | InsightFaceEngineConfig, Field(discriminator="type")] = Field(
        default_factory=DlibEngineConfig, description="Face engine and its settings: type dlib (the default) "
                                                      "or insightface.")
    engine_instances: int = Field(
        default=2, ge=1, le=16,
        description="Engine instances, each owned by one thread (a dlib model must never be shared between "
                    "threads). Cameras and enrolment requests send their work to whichever owner is free; two let "
                    "both cores detect at once (dlib releases the GIL). About 60 MB each.")
    detector: FaceDetectorName = Field(
        default="blazeface",
        description="How camera frames are searched for faces. 'blazeface' (the default with the dlib engine): "
                    "MediaPipe's BlazeFace on tiles sized to engine.min_face_px (face.blazeface), with the engine's "
                    "own landmarks and embedder on its boxes; at 720p it found every face HOG found on the scenes "
                    "set and every entrance visit, in about half HOG's time (python -m bench.face_detect). 'hog': "
                    "the engine's own detector (dlib's HOG; the default with any other engine). Enrolment photos "
                    "are checked the same way either way.")
    blazeface: BlazeFaceFramesConfig = Field(default_factory=BlazeFaceFramesConfig,
                                             description="BlazeFace's settings when detector is 'blazeface'.")
    voter: VoterSettings = Field(default_factory=VoterSettings, description="Open-set identity decision.")
    visit_shots: VisitShotSettings = Field(default_factory=VisitShotSettings,
                                           description="Templates that grow from visits a lobby manager confirmed.")
    stranger_crops: StrangerCropSettings = Field(default_factory=StrangerCropSettings,
                                                 description="Recent unknown faces' crops, kept briefly for \"this "
                                                             "was X\" (off by default).")
    adaptation: AdaptationSettings = Field(default_factory=AdaptationSettings,
                                           description="Learning the branch's face population without labels, "
                                                       "and when its transform is used.")
    reembed_interval_s: float = Field(default=0.05, ge=0, le=10,
                                      description="Minimum gap between embeddings of one undecided track.")
    quality_gain: float = Field(default=0.1, ge=0, le=1,
                                description="Quality rise that makes a decided track worth re-embedding.")
    track_iou: float = Field(default=0.25, gt=0, lt=1, description="IoU to continue a face track.")
    track_max_missed_s: float = Field(default=1.5, gt=0, le=30,
                                      description="A track unseen this long has ended.")
    track_max_speed: float = Field(default=10.0, ge=0, le=100,
                                   description="Face sizes per second a face may move between two frames and "
                                               "keep its track (measured from where it was or where its velocity "
                                               "says it should be); 0 = IoU with the last box only. Someone "
                                               "walking across the picture moves most of a face's width between "
                                               "two frames.")
    revote_after_missed: int = Field(default=3, ge=1, le=1000,
                                     description="A settled track (a stranger, or decided) that reappears "
                                                 "after this many frames without its face is voted on again: "
                                                 "the face found where someone left may be someone else (a VIP "
                                                 "walking in where a stranger walked out).")
    enrol_min_sharpness: float = Field(default=15.0, ge=0,
                                       description="Laplacian variance of the aligned 150 px chip below "
                                                   "which an enrolment photo is refused as blurred. 15 is "
                                                   "below all 138 real photos sampled from the face sets "
                                                   "(1st percentile 17.8) and above a sigma-4 Gaussian "
                                                   "blur of a sharp photo (12.8).")
    enrol_max_yaw: float = Field(default=ENROL_MAX_ABS_YAW, gt=0, le=2,
                                 description="Largest |yaw ratio| (nose offset from the eye midpoint, in eye "
                                             "distances; 0 is frontal) of an enrolment photo; a larger one is "
                                             "refused as a profile. 0.45 keeps 490 of the 491 faces of real "
                                             "enrolment-like photos (CASIA-FaceV5, RMFD crops, deepface; 99th "
                                             "percentile 0.41, python -m bench.enrol_quality).")
    enrol_min_hog_score: float = Field(default=ENROL_MIN_HOG_SCORE, ge=-1, le=5,
                                       description="Smallest HOG detection score of an enrolment face. 0.01 keeps "
                                                   "261 of 263 HOG-found real faces (1st percentile 0.017): real "
                                                   "tight crops often score low, so this only refuses the "
                                                   "weakest detections.")
    enrol_min_blazeface_score: float = Field(default=ENROL_MIN_BLAZEFACE_SCORE, gt=0, lt=1,
                                             description="Smallest BlazeFace score of an enrolment face found by "
                                                         "BlazeFace (HOG found none). 0.55 keeps 227 of 228 real "
                                                         "ones (1st percentile 0.60); the detector's floor is 0.5.")
    enrol_min_eye_aspect: float | None = Field(
        default=None, ge=0, le=1,
        description="Closed-eye check: smallest eye aspect ratio (dlib 68 points) of an enrolment face; None (the "
                    "default) does not check. The engine's 5 points (eye corners, nose) cannot tell closed eyes. "
                    "Real open eyes measured down to 0.097 (1st percentile 0.13) on tight East-Asian crops, so a "
                    "limit near 0.10 is the most that keeps 99 %, and it was not validated on closed eyes. The "
                    "68-point model's training data (iBUG 300-W) is licensed for research only.")


    @model_validator(mode="after")
    def _detector_fits_engine(self) -> FaceConfig:
        """BlazeFace boxes need an engine that fits its own landmarks on them: dlib."""
        if self.detector == "blazeface" and self.engine.type != "dlib":
            raise ValueError(f"face.detector 'blazeface' works with engine type 'dlib' only (engine "
                             f"{self.engine.type!r} has its own detector); use face.detector: hog")
        return self

    @model_validator(mode="after")
    def _threshold_fits_engine(self) -> FaceConfig:
        """The default voter threshold was measured for dlib; another engine needs its own."""
        if self.engine.type != "dlib" and "threshold" not in self.voter.model_fields_set:
            raise ValueError(f"face.voter.threshold must be set for engine {self.engine.type!r}: the default "
                             "was calibrated for dlib; choose one on evaluation data "
                             "(smartbranch faces calibrate)")
        return self


class VipArrivalRuleConfig(_Strict):
    cooldown_s: float = Field(default=600.0, ge=0, le=86400,
                              description="A VIP seen again within this many seconds of last being seen is "
                                          "the same visit and gets no new alert.")
