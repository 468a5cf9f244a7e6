"""The console's web UI: pages served from ``static/`` by :mod:`console.web.pages`."""
