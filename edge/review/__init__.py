"""Compliance review records: the review store (interactions, clips, verdicts, audit), its tables and types."""
