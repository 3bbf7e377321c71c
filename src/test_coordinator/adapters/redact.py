"""Keep secrets out of logs and health details."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_MASK = "***"
_USERINFO_PASSWORD = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):[^@/\s]*@"
)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``; the rest is left as written."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:{_MASK}@{host}"))


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _USERINFO_PASSWORD.sub(rf"\g<scheme>\g<user>:{_MASK}@", text)
