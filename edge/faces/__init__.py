"""Faces: tracks, the face pipeline, the VIP arrival rule (vip_rule), enrolment, the gallery rebuild and learning
the branch's face population (adapt)."""

__all__ = [  # the modules other capability folders may import
    "adapt",
    "config",
    "enrol",
    "gallery_rebuild",
    "pipeline",
    "tracks",
    "vip_rule",
]
