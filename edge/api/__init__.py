"""The HTTP surface over a runtime: the app factory, auth, schemas, error bodies, body limits, refusals, the
compliance review routes and page (static/review.html). The server thread is alerts.server (the console
runs one too)."""

__all__ = ["app", "auth", "pairing"]  # the modules other capability folders may import
