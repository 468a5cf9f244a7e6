"""The ``smartbranch`` command line (main), and its plates and keys commands."""
