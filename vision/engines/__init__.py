"""Face engines and the explicit registry that builds them from config."""
