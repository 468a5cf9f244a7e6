"""Faces: tracks, the face pipeline, the VIP arrival rule (vip_rule), enrolment, the gallery rebuild and learning
the branch's face population (adapt), templates that grow from confirmed visits (visit_shots), and the unknown
faces' crops kept briefly for "this was X" (stranger_crops)."""

__all__ = [  # the modules other capability folders may import
    "adapt",
    "config",
    "enrol",
    "gallery_rebuild",
    "pipeline",
    "stranger_crops",
    "tracks",
    "vip_rule",
    "visit_shots",
]
