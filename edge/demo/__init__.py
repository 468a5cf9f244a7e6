"""The demo: a scene of real photos rendered to video, run through the real service."""

__all__ = ["run"]  # the modules other capability folders may import
