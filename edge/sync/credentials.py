"""The edge's console credentials: ``<data_dir>/console.token``, mode 0600, Fernet-encrypted with the data key.

The token is a bearer secret: it never goes into the YAML (which is copied around, pasted into tickets, kept in
version control). The file holds a small JSON document: the token, the edge id the console gave, and the branch it
joined (its code names the MQTT topic). A file that does not decrypt under the data key is refused, never
replaced silently.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from vault.files import write_private

TOKEN_FILE = "console.token"


class CredentialsError(Exception):
    """The token file exists but cannot be used (unreadable, another key, not ours)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str
    edge_id: str
    branch_code: str
    branch_name: str
    branch_timezone: str

    def __repr__(self) -> str:  # never print the token
        return f"Credentials(edge_id={self.edge_id!r}, branch_code={self.branch_code!r})"


def token_path(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE


def write_credentials(data_dir: Path, cipher: Fernet, credentials: Credentials) -> Path:
    """Write the token file atomically (0600 temp file, fsync, rename)."""
    path = token_path(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    blob = cipher.encrypt(json.dumps(asdict(credentials)).encode("utf-8"))
    path.with_name(f".{path.name}.tmp").unlink(missing_ok=True)  # left by a crash mid-write
    write_private(path, blob)
    return path


def read_credentials(data_dir: Path, cipher: Fernet) -> Credentials | None:
    """The stored credentials; None when the edge was never registered."""
    path = token_path(data_dir)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc}") from exc
    try:
        body = json.loads(cipher.decrypt(blob))
        return Credentials(token=str(body["token"]), edge_id=str(body["edge_id"]),
                           branch_code=str(body["branch_code"]), branch_name=str(body.get("branch_name", "")),
                           branch_timezone=str(body.get("branch_timezone", "")))
    except InvalidToken as exc:
        raise CredentialsError(f"{path} does not decrypt with this data key; register the edge again") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialsError(f"{path} is not a console token file: {exc}") from exc
