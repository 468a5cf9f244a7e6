"""Sync with the central console: its config section, the console credentials (token file), the HTTP client, the
gallery change sets and their atomic apply, the puller thread, the MQTT wake-up and the service that wires them."""

__all__ = [  # the modules other capability folders may import
    "apply",
    "changes",
    "client",
    "config",
    "credentials",
    "outbox",
    "population",
    "puller",
    "sender",
    "service",
]
