"""Wiring for one branch: config, camera sources, pipelines, rules, store, API and CLI."""
