"""URLs a user sends: what may be shown of them, and where they may point.

`redact_url(url)` is the one way a URL appears in a log line, an error, a report or a file in the
zip: scheme, host, port and path are kept; user info (`user:password@`), the query (signed-URL
tokens) and the fragment are dropped; `data:` URIs are cut to their header. `redact_text(text)`
applies it to every URL inside a text (log lines, exception messages).

`check_destination(url)` refuses a URL whose host resolves to a loopback, private, link-local
(169.254.0.0/16: cloud metadata), multicast, reserved or otherwise non-global address, checked after
DNS resolution (and by the downloader again on every redirect and on the connected socket).
`RVC_ALLOW_PRIVATE_URLS=1` allows them (local use, tests serving on 127.0.0.1); a comma-separated list
of host names instead allows only those hosts (an internal mirror). The refusal names the host only.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import urllib.parse

from infer.lib.errors import UserInputError

ALLOW_PRIVATE_ENV = "RVC_ALLOW_PRIVATE_URLS"
_URL_RE = re.compile(r"\b(?:https?|ftp|file|wss?)://[^\s'\"<>(){}|\\^`]+", re.IGNORECASE)
# urllib3's own messages: "... Max retries exceeded with url: /path?token=..."
_URLPATH_RE = re.compile(r"(url: /[^\s?'\")]*)\?[^\s'\")]*")
_DATA_RE = re.compile(r"\bdata:[^,\s]{0,100},[^\s'\"]{33,}", re.IGNORECASE)


def redact_url(url: str, limit: int = 200) -> str:
    """`url` without user info, query or fragment (data: URIs cut to their header); at most `limit` chars."""
    url = str(url).strip()
    if url[:5].lower() == "data:":
        head = url.split(",", 1)[0][:60]
        return f"{head},... ({len(url)} chars)"
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unparseable URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    out = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if not netloc and "@" in parts.path:  # "user:pw@host/a" parses as scheme "user": keep what follows the @
        out = parts.path.split("@", 1)[-1]
    return out if len(out) <= limit else out[: limit - 3] + "..."


def redact_text(text: str) -> str:
    """`text` with every URL in it passed through `redact_url` (for log lines and error messages)."""
    if "://" not in text and "url:" not in text and "data:" not in text.lower():
        return text
    text = _URL_RE.sub(lambda m: redact_url(m.group(0)), text)
    text = _URLPATH_RE.sub(r"\1", text)
    return _DATA_RE.sub(lambda m: redact_url(m.group(0)), text)


def private_urls_allowed(host: str | None = None) -> bool:
    """True when `RVC_ALLOW_PRIVATE_URLS` is 1/true/yes, or lists `host` (comma-separated names)."""
    raw = os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower()
    if raw in ("1", "true", "yes"):
        return True
    names = {h.strip().strip("[]") for h in raw.split(",") if h.strip()}
    return host is not None and host.lower().strip("[]") in names


def is_public_address(ip: str) -> bool:
    """True for a global unicast address (not loopback, private, link-local, multicast, reserved...)."""
    try:
        a = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    bad = (
        a.is_loopback
        or a.is_private
        or a.is_link_local
        or a.is_multicast
        or a.is_reserved
        or a.is_unspecified
        or (isinstance(a, ipaddress.IPv6Address) and a.is_site_local)
    )
    return a.is_global and not bad


class DestinationRefused(UserInputError):
    """A URL points at a host this service does not fetch from."""


def refusal(host: str) -> DestinationRefused:
    return DestinationRefused(
        f"the host {host} is on a loopback, private, link-local or reserved network; only public hosts are "
        f"fetched (set {ALLOW_PRIVATE_ENV}=1 to allow them when running locally)"
    )


def check_destination(url: str) -> None:
    """Raise `DestinationRefused` unless every address `url`'s host resolves to is public (or allowed).

    A host that does not resolve passes: the download then fails with a connection error.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if not host or private_urls_allowed(host):
        return
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError, OSError):
        return
    for info in infos:
        if not is_public_address(str(info[4][0])):
            raise refusal(host)


def check_peer(sock: socket.socket | None, host: str) -> None:
    """Raise `DestinationRefused` when the connected socket's peer is not public (DNS rebinding)."""
    if sock is None or private_urls_allowed(host):
        return
    try:
        peer = sock.getpeername()[0]
    except (OSError, IndexError):
        return
    if not is_public_address(str(peer)):
        raise refusal(host)
