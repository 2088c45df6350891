"""How an archive keeps a message once: its SignedMessage envelope and payload XML in one blob.

A SignedMessage envelope carries its payload XML inside: ``Body`` is the base64 of the
signature followed by the XML. Keeping the envelope and the XML apart would store the XML
twice (and the base64 copy does not compress). :func:`pack` splits the envelope around its
``Body`` value and keeps the text before and after it, the signature and the XML, zlib
compressed (level 1: a 96-ISP FlexOffer's 4 KB XML and 5.6 KB envelope take 1.1 KB).
:func:`unpack` gives both back byte for byte: the envelope is rebuilt only when re-encoding
the body gives exactly the text found (checked when packing); an envelope that does not
(whitespace in its base64, a body that does not end with this XML) is kept whole beside
the XML instead. Without an envelope, the XML alone is compressed.

The form is internal to the stores; the first byte it holds says which of the three it is.
The stores pack what they archive after the envelope was verified (a sender's bytes, yet
signed ones); packing is linear in the envelope's size whatever it holds.
"""
from __future__ import annotations

import binascii
import functools
import struct
import zlib

_XML_ONLY, _SPLICED, _WHOLE = 0, 1, 2
_HEAD = struct.Struct(">III")


def split(envelope: bytes, payload_xml: bytes) -> tuple[bytes, bytes, bytes] | None:
    """``(prefix, suffix, signature)`` such that ``envelope == prefix +
    b64encode(signature + payload_xml) + suffix``, or None if it is not so.

    Whatever text is taken for the body, the result is exact or None: the prefix and suffix
    are the envelope's own bytes around it, and the body must be exactly the base64 of the
    signature (decoded from its first characters only) followed by ``payload_xml``: encoding
    is checked, which costs a fifth of decoding the whole body."""
    for quote in b'"', b"'":
        start = envelope.find(b"Body=" + quote)
        if start >= 0:
            start += 6
            end = envelope.find(quote, start)
            break
    else:
        return None
    if end < 0:
        return None
    text = envelope[start:end]
    size = len(text) // 4 * 3 - len(text[-2:]) + len(text[-2:].rstrip(b"="))
    signature_size = size - len(payload_xml)
    if len(text) % 4 or signature_size < 0:
        return None
    try:
        signature = binascii.a2b_base64(text[:(signature_size + 2) // 3 * 4],
                                        strict_mode=True)[:signature_size]
    except binascii.Error:
        return None
    if binascii.b2a_base64(signature + payload_xml, newline=False) != text:
        return None
    return envelope[:start], envelope[end:], signature


def pack(envelope: bytes | None, payload_xml: bytes) -> bytes:
    """The one blob an archive keeps for a message (see the module docstring)."""
    if envelope is None:
        raw = bytes((_XML_ONLY,)) + payload_xml
    else:
        parts = split(envelope, payload_xml)
        if parts is not None:
            prefix, suffix, signature = parts
            raw = b"".join((bytes((_SPLICED,)),
                            _HEAD.pack(len(prefix), len(suffix), len(signature)),
                            prefix, suffix, signature, payload_xml))
        else:
            raw = b"".join((bytes((_WHOLE,)), _HEAD.pack(len(envelope), 0, 0), envelope,
                            payload_xml))
    return zlib.compress(raw, 1)


# The rules read the same few messages again and again (the FlexRequest of every offer on
# it): a decompression costs 8 µs, a hit well under 1 µs; 256 entries hold about 2.5 MB.
@functools.lru_cache(maxsize=256)
def unpack(blob: bytes) -> tuple[bytes, bytes | None]:
    """``(payload_xml, envelope or None)`` from a blob of :func:`pack` (immutable, so a
    result is shared by the readers of one blob)."""
    raw = zlib.decompress(blob)
    kind = raw[0]
    if kind == _XML_ONLY:
        return raw[1:], None
    first, second, third = _HEAD.unpack_from(raw, 1)
    at = 1 + _HEAD.size
    if kind == _WHOLE:
        return raw[at + first:], raw[at:at + first]
    if kind != _SPLICED:
        raise ValueError(f"not a packed archive entry (kind {kind})")
    prefix, suffix = raw[at:at + first], raw[at + first:at + first + second]
    sealed = raw[at + first + second:]
    xml = sealed[third:]
    return xml, prefix + binascii.b2a_base64(sealed, newline=False) + suffix

