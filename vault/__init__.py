"""Encryption at rest, shared by the edge box and the console: the data key and the keys derived from it
(``keys``), Fernet blobs, owner-only file writes (``files``), and the encrypted clip file format
(``clip_file``). Imports none of our packages."""
