"""The ``smartbranch`` command: the one entry point above the edge box and the console (imports both)."""
