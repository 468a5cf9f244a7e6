"""Counter cameras: the counter pipeline (staff and customers, interactions), its config section, the counter
rules (unattended, unstaffed, interactions to the review store) and hourly stats."""

__all__ = ["config", "pipeline", "rules", "stats"]  # the modules other capability folders may import
