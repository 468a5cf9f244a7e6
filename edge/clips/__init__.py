"""Compliance clips: the frame ring, the recorder and its encoder worker, frames, manifests, recovery after a
kill, retention, the config section and the clip records (types)."""

__all__ = ["config", "recorder", "recovery", "retention", "types"]  # the modules other capability folders may import
