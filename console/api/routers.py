"""Every router of the console, in the order they are mounted."""

from __future__ import annotations

from fastapi import APIRouter

ALL: list[APIRouter] = []

from console.api import branches as _branches, plates_consent as _plates_consent  # noqa: E402, I001  (H2b)
ALL += [_branches.router, _plates_consent.router]
from console.api.imports import router as _imports  # noqa: E402  (H3)
ALL.append(_imports)

from console.api import persons as _persons, photos as _photos  # noqa: E402, I001  (H2a)
ALL += [_persons.router, _photos.router]

from console.api import audit as _audit, auth as _auth, users as _users  # noqa: E402, I001  (H1)
ALL += [_auth.router, _users.router, _audit.router]

from console.api import edges as _edges, sync as _sync  # noqa: E402, I001  (S1)
ALL += [_edges.router, _sync.router]

from console.api import clips as _clips, events as _events, stats as _stats  # noqa: E402, I001  (S3)
ALL += [_events.router, _clips.router, _stats.router]

from console.web.pages import router as web_pages  # noqa: E402  (the pages mount after the API)

ALL.append(web_pages)
