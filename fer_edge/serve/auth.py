"""The access token of ``fer-edge serve``: made, loaded, checked. Light tier.

Off loopback a camera stream is private: every request must carry the token, as the query
parameter ``?token=`` or the header ``Authorization: Bearer <token>``, and it is compared in
constant time (:func:`hmac.compare_digest`). Nothing else (a cookie, another header, a path
segment) is accepted.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import stat
from pathlib import Path
from urllib.parse import parse_qs

from fer_edge.errors import ConfigError

#: characters a token may hold: URL-safe without escaping (RFC 3986 unreserved)
TOKEN_RE = re.compile(r"[A-Za-z0-9._~-]{16,512}")
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only reaches this machine."""
    if host.strip().lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A random token (32 URL-safe characters, 192 bits from :mod:`secrets`)."""
    return secrets.token_urlsafe(24)


def load_token(path: str) -> str:
    """The token kept in ``path``.

    Raises:
        ConfigError: the file is missing, not a regular file, readable or writable by group or
            others, or does not hold one token of 16-512 URL-safe characters.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"--token-file {p}: is a folder; give the file holding the token")
    if not p.is_file():
        raise ConfigError(f"--token-file {p}: not found; create it, e.g. python3 -c "
                          f"\"import secrets; print(secrets.token_urlsafe(24))\" > {p} && "
                          f"chmod 600 {p}")
    mode = p.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"--token-file {p}: other users can read or change it (mode "
                          f"{stat.filemode(mode)}); chmod 600 {p}")
    text = p.read_text(encoding="utf-8", errors="replace").strip()
    if not TOKEN_RE.fullmatch(text):
        raise ConfigError(f"--token-file {p}: must hold one token of 16-512 characters from "
                          "A-Z a-z 0-9 . _ ~ - (no spaces)")
    return text


class TokenCheck:
    """Checks a request's token; ``token=None`` lets every request through (loopback)."""

    def __init__(self, token: str | None):
        self._token = token.encode() if token else None

    @property
    def required(self) -> bool:
        return self._token is not None

    def allows(self, query: str, authorization: str | None) -> bool:
        """Whether a request with this query string and ``Authorization`` header may pass.

        Both places are checked in constant time; a request passes when either holds the
        token. A repeated ``token=`` parameter passes only if every copy matches.
        """
        if self._token is None:
            return True
        given = parse_qs(query, keep_blank_values=True).get("token", [])
        if authorization and authorization[:7].lower() == "bearer ":
            given = [*given, authorization[7:].strip()]
        ok = bool(given)
        for value in given:
            ok &= hmac.compare_digest(value.encode("utf-8", "replace"), self._token)
        return ok
