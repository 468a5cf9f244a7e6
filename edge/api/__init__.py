"""The HTTP surface over a runtime: the app factory, auth, schemas, error bodies, body limits, refusals, the
compliance review routes and page (static/review.html), and the server thread."""

__all__ = ["app", "auth", "server"]  # the modules other capability folders may import
