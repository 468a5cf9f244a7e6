"""Faces: tracks, the face pipeline, the VIP arrival rule (vip_rule), enrolment and the gallery rebuild."""
