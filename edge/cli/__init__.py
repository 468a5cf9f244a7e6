"""The ``smartbranch`` command line (main), and its plates and keys commands."""

__all__ = ["main"]  # the entry point (pyproject: smartbranch = "edge.cli.main:main")
