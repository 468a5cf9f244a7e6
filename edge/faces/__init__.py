"""Faces: tracks, the face pipeline, the VIP arrival rule (vip_rule), enrolment, the gallery rebuild and learning
the branch's face population (adapt), and templates that grow from confirmed visits (visit_shots)."""

__all__ = [  # the modules other capability folders may import
    "adapt",
    "config",
    "enrol",
    "gallery_rebuild",
    "pipeline",
    "tracks",
    "vip_rule",
    "visit_shots",
]
