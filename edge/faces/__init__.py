"""Faces: tracks, the face pipeline, the VIP arrival rule (vip_rule), enrolment and the gallery rebuild."""

__all__ = [  # the modules other capability folders may import
    "config",
    "enrol",
    "gallery_rebuild",
    "pipeline",
    "tracks",
    "vip_rule",
]
