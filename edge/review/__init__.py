"""Compliance review records: the review store (interactions, clips, verdicts, audit), its tables and types."""

__all__ = ["store", "types"]  # the modules other capability folders may import
