"""The console's HTTP API (JSON under ``/api``) and its web pages."""
