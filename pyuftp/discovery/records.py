"""What a UFTP party publishes about itself, and the checks on what is read back.

The spec's transport appendix names three DNS records for a participant ``example.com``:

- ``_usef.example.com`` TXT: the version of the specification it implements;
- ``_{role}._usef.example.com`` TXT: up to two space-separated public key strings (``cs1.``
  + base64), two only while a key is being replaced;
- ``_http._{role}._usef.example.com`` CNAME: the host of its HTTP endpoint for that role.

Everything here is pure: names, parsers of what a DNS server (or a registry) sent, and the
:class:`Participant` value every discovery source returns. The parsers take hostile input:
their time and memory are bounded by the input's size, and every refusal is a
:class:`DiscoveryError` that quotes at most an excerpt of what was read.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..signing.crypto import VerifyKey
from ..exceptions import InvalidKey, PyUFTPError, excerpt

#: The roles a participant may publish records for.
ROLES = ("AGR", "CRO", "DSO")
#: At most this many keys are taken from a key record (the spec says up to two).
MAX_KEYS = 2
#: A key string longer than this is refused before it is decoded (cs1. + 88 base64 chars).
MAX_KEY_CHARS = 100
#: The longest version string kept from a ``_usef`` TXT record.
MAX_VERSION_CHARS = 64
#: The path a UFTP 3 endpoint host serves messages at (see ``message-transport-mechanism``).
ENDPOINT_PATH = "/shapeshifter/api/v3/message"
# A DNS host name in presentation form: labels of letters, digits, '-' and '_' (the spec's
# own labels start with '_'), 1-63 characters each, 253 in all, an optional final dot.
#: What a cache answers when it holds nothing fresh (see ``DnsDiscovery.peek``).
class _Miss:
    def __repr__(self) -> str:
        return "MISS"

    def __bool__(self) -> bool:
        return False


MISS: Any = _Miss()
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\Z")


class DiscoveryError(PyUFTPError):
    """A party's published records could not be found, read or trusted.

    ``temporary`` is True when looking again later may succeed (a DNS time-out, a DNSSEC
    validation failure, an unauthenticated answer, a CNAME loop): on receipt the service
    answers HTTP 419, on sending the delivery is retried. False means the records are there
    but say something unusable (an answer that will not change by waiting).
    """

    http_status = 419

    def __init__(self, message: str, *, temporary: bool = True) -> None:
        super().__init__(message)
        self.temporary = temporary


@dataclass(frozen=True)
class Participant:
    """What is known of one party in one role, and how sure we are of it.

    ``keys`` holds one public key string, or two during a key rotation (a message signed
    with either is accepted); ``endpoint`` is its service URL when the source knows it;
    ``requires_oauth2`` says the source announced that the party wants bearer tokens;
    ``authenticated`` is True only when the source is trusted (a static entry, a DNSSEC
    validated answer, a registry reached over HTTPS with a token); ``source`` names it.
    """

    domain: str
    role: str
    keys: tuple[str, ...] = ()
    endpoint: str | None = None
    version: str | None = None
    requires_oauth2: bool = False
    authenticated: bool = False
    source: str = ""


def normal_domain(domain: str) -> str:
    """``domain`` as a lower-case host name without the final dot; DiscoveryError
    (final) if it is not a host name at all."""
    if not isinstance(domain, str) or not domain or len(domain) > 254:
        raise DiscoveryError(f"not a domain name: {excerpt(str(domain))}", temporary=False)
    name = domain[:-1] if domain.endswith(".") else domain
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise DiscoveryError(f"not a domain name: {excerpt(domain)}", temporary=False)
    return name.lower()


def normal_role(role: str) -> str:
    """``role`` upper-cased, if it is one of AGR, CRO, DSO; else DiscoveryError (final)."""
    upper = role.upper() if isinstance(role, str) else ""
    if upper not in ROLES:
        raise DiscoveryError(f"role must be one of {', '.join(ROLES)}, not "
                             f"{excerpt(str(role))}", temporary=False)
    return upper


def version_name(domain: str) -> str:
    """``_usef.{domain}``: the TXT record with the implemented version."""
    return f"_usef.{normal_domain(domain)}"


def key_name(domain: str, role: str) -> str:
    """``_{role}._usef.{domain}``: the TXT record with the role's public keys."""
    return f"_{normal_role(role).lower()}._usef.{normal_domain(domain)}"


def endpoint_name(domain: str, role: str) -> str:
    """``_http._{role}._usef.{domain}``: the CNAME to the role's endpoint host."""
    return f"_http.{key_name(domain, role)}"


def endpoint_url(host: str) -> str:
    """The URL messages are POSTed to on ``host`` (HTTPS on port 443, as the spec says)."""
    return f"https://{normal_domain(host)}{ENDPOINT_PATH}"


def txt_text(strings: Iterable[bytes]) -> str:
    """One TXT record's character strings joined, as text; DiscoveryError (final) for bytes
    that are not printable ASCII (a key or a version never needs any)."""
    data = b"".join(strings)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise DiscoveryError(f"TXT record is not ASCII: {excerpt(repr(data))}",
                             temporary=False) from None
    if not text.isprintable():
        raise DiscoveryError(f"TXT record has control characters: {excerpt(repr(text))}",
                             temporary=False)
    return text


def parse_keys(texts: Iterable[str]) -> tuple[str, ...]:
    """The public keys in the TXT records of ``_{role}._usef.{domain}``: space-separated
    key strings, at most :data:`MAX_KEYS` in all, each checked (``cs1.`` + base64, or bare
    base64 of 32 bytes), duplicates once. DiscoveryError (final) if a key string is
    unusable or there are more than :data:`MAX_KEYS`; none found gives ``()``."""
    keys: list[str] = []
    for text in texts:
        for word in text.split():
            if len(keys) >= MAX_KEYS:
                raise DiscoveryError(f"more than {MAX_KEYS} public keys published",
                                     temporary=False)
            if len(word) > MAX_KEY_CHARS:
                raise DiscoveryError(f"public key string of {len(word)} characters is too "
                                     "long", temporary=False)
            try:
                VerifyKey(word)
            except InvalidKey as exc:
                raise DiscoveryError(f"unusable public key {excerpt(word)}: {exc}",
                                     temporary=False) from None
            if word not in keys:
                keys.append(word)
    return tuple(keys)


def parse_version(texts: Iterable[str]) -> str | None:
    """The implemented version from the ``_usef.{domain}`` TXT record(s): the first
    non-empty one, stripped; None if there is none."""
    for text in texts:
        value = text.strip()
        if value:
            if len(value) > MAX_VERSION_CHARS:
                raise DiscoveryError(f"version string of {len(value)} characters is too long",
                                     temporary=False)
            return value
    return None


def parse_target(text: str) -> str:
    """A CNAME target in presentation form, as a normal host name (final DiscoveryError if
    it is not one: a wildcard, an escaped byte, an empty label)."""
    if "\\" in text or "*" in text:
        raise DiscoveryError(f"CNAME target is not a host name: {excerpt(text)}",
                             temporary=False)
    return normal_domain(text)


__all__ = ["DiscoveryError", "Participant", "MISS", "ROLES", "MAX_KEYS", "ENDPOINT_PATH",
           "normal_domain", "normal_role", "version_name", "key_name", "endpoint_name",
           "endpoint_url", "txt_text", "parse_keys", "parse_version", "parse_target"]
