"""Parking: the plate pipeline, the plate registry, its config section and the VIP vehicle rule."""

__all__ = ["config", "pipeline", "registry", "vehicle_rule"]  # the modules other capability folders may import
