"""TLS for both ends: SSL contexts from file paths, and the spec's no-plain-HTTP rule.

    context = server_context("cert.pem", "key.pem", client_ca="partners-ca.pem")   # mTLS
    context = client_context(ca_file="ca.pem", client_cert="me.pem", client_key="me.key")
    refuse_plain_http("http://dso.example.com/...")   # ValueError: not on a loopback address
    check_url("dso.example.com/shapeshifter")         # ValueError: not an absolute URL

The UFTP transport appendix demands HTTP over TLS. pyuftp therefore refuses to send to an
``http://`` URL unless its host is a loopback address (127.0.0.0/8, ::1, ``localhost``),
where nothing leaves the machine; ``allow_plain_http=True`` is the explicit way around it
(a TLS-terminating proxy on a trusted network, say).
"""
from __future__ import annotations

import ipaddress
import os
import ssl
from urllib.parse import urlsplit


def check_url(url: object, what: str = "endpoint") -> str:
    """``url`` if it is an absolute http(s) URL, else ValueError saying what is wrong."""
    if not isinstance(url, str):
        raise ValueError(f"{what} must be a URL string, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"{what} {url!r} is not an absolute http(s) URL; write it in full, e.g. "
            "https://dso.example.com/shapeshifter/api/v3/message")
    return url


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (a name or an address, brackets allowed) is this machine's loopback:
    ``localhost`` or an address in 127.0.0.0/8 or ::1. Names are not resolved."""
    if not host:
        return False
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_plain_http_allowed(url: str, allow_plain_http: bool = False) -> bool:
    """Whether a request to ``url`` may go out: https always, http only to a loopback host
    (or when ``allow_plain_http`` says so)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return True
    return allow_plain_http or is_loopback_host(parts.hostname)


def refuse_plain_http(url: str, allow_plain_http: bool = False, what: str = "endpoint") -> None:
    """Raise ValueError when ``url`` is plain http to a host other than loopback."""
    if not is_plain_http_allowed(url, allow_plain_http):
        host = urlsplit(url).hostname
        raise ValueError(
            f"{what} {url!r} is plain http to {host}, which is not a loopback address: UFTP "
            "messages go over TLS (https://); pass allow_plain_http=True only where a "
            "trusted network carries the traffic")


def plain_http_warning(host: str | None, tls: bool) -> str | None:
    """What a service listening on ``host`` should warn about: plain HTTP off loopback
    (``0.0.0.0`` and ``::`` included: they listen on every address)."""
    if tls or is_loopback_host(host):
        return None
    return (f"listening on plain HTTP on {host}: UFTP demands TLS; give the service an "
            "ssl_context or cert_file, or listen on 127.0.0.1 behind a TLS proxy")


def client_context(ca_file: str | os.PathLike[str] | None = None,
                   client_cert: str | os.PathLike[str] | None = None,
                   client_key: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """An SSL context for sending: the system's trusted CAs, or only those in ``ca_file``;
    with ``client_cert`` (and ``client_key``, unless the key is in the same PEM file) the
    certificate presented to a service that asks for one (mutual TLS)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert is not None:
        context.load_cert_chain(client_cert, client_key)
    elif client_key is not None:
        raise ValueError("client_key needs client_cert: the certificate it belongs to")
    return context


def server_context(cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str] | None
                   = None, *, client_ca: str | os.PathLike[str] | None = None,
                   require_client_cert: bool | None = None) -> ssl.SSLContext:
    """An SSL context for a service: its certificate chain (``cert_file``, a PEM with the
    intermediates) and key. ``client_ca``: the CAs whose client certificates are trusted;
    with it, a client must present one (mutual TLS) unless ``require_client_cert=False``,
    which only asks for one."""
    if require_client_cert and client_ca is None:
        raise ValueError("require_client_cert needs client_ca: the CAs to check them against")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = (ssl.CERT_OPTIONAL if require_client_cert is False
                               else ssl.CERT_REQUIRED)
    elif require_client_cert:
        raise ValueError("require_client_cert needs client_ca: the CAs to check them against")
    return context


__all__ = ["check_url", "is_loopback_host", "is_plain_http_allowed", "refuse_plain_http",
           "plain_http_warning", "client_context", "server_context"]
