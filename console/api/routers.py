"""Every router of the console, in the order they are mounted."""

from __future__ import annotations

from fastapi import APIRouter

ALL: list[APIRouter] = []
