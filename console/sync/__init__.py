"""Edge <-> console sync, console side: edge credentials (one-time codes, tokens, revocation), the gallery feed
the edges long-poll, their status reports, and the optional MQTT announcement of new gallery versions.

Every answer is built from the database alone, so any console replica can serve any edge (the scale path)."""
