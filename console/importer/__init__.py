"""Bulk import of persons from a CSV and a zip (or folder) of photos: file checks (:mod:`.csvfile`,
:mod:`.photos`), one row's work (:mod:`.rows`), the job, its counters and its per-row ledger (:mod:`.jobs`),
who runs a job and what becomes of a job whose runner died (:mod:`.lease`), the web upload kept encrypted while
its job may need it (:mod:`.sealed`), and starting, resuming or abandoning a run (:mod:`.service`). The API
(:mod:`console.api.imports`) and the CLI (:mod:`console.cli.imports`) use :mod:`.service`."""

from __future__ import annotations
