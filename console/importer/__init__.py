"""Bulk import of persons from a CSV and a zip (or folder) of photos: file checks (:mod:`.csvfile`,
:mod:`.photos`), one row's work (:mod:`.rows`), the job and its counters (:mod:`.jobs`), and starting a run
(:mod:`.service`). The API (:mod:`console.api.imports`) and the CLI (:mod:`console.cli.imports`) use
:mod:`.service`."""

from __future__ import annotations
