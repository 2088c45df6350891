"""Signing and verification of UFTP messages (cryptographic scheme CS1).

UFTP seals every outgoing message with the sender's Ed25519 signing key, using
libsodium's ``crypto_sign``.  A *sealed* message is the 64-byte signature followed by
the message bytes; the receiver unseals it with ``crypto_sign_open`` and the sender's
public key, which verifies the signature and returns the message bytes in one step.

Key formats handled here:

* private keys: base64 of the 64-byte libsodium secret key (32-byte seed followed by
  the 32-byte public key).  Base64 of a bare 32-byte seed is accepted too;
* public keys: base64 of the 32-byte Ed25519 public key;
* published keys: ``cs1.`` followed by base64 of either the 32-byte signing public key
  or the 64-byte join of signing key and encryption key (signing key first).

Keys are decoded and checked once, when a :class:`SigningKey` or :class:`VerifyKey` is
built, so a misconfigured key is reported at start-up rather than on the first message.
Both classes are immutable and cheap to reuse for any number of messages.

Errors: a malformed key raises :class:`~pyuftp.exceptions.InvalidKey`; a sealed message
that does not verify (too short, tampered, or signed by another key) raises
:class:`~pyuftp.exceptions.InvalidSignature`.  Exceptions from PyNaCl never escape.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import logging
from functools import lru_cache
from typing import Union

import nacl.bindings
import nacl.exceptions

from pyuftp.exceptions import InvalidKey, InvalidSignature

__all__ = [
    "CS1_PREFIX",
    "SIGNATURE_BYTES",
    "PUBLIC_KEY_BYTES",
    "SECRET_KEY_BYTES",
    "SEED_BYTES",
    "SigningKey",
    "VerifyKey",
    "generate_keypair",
    "seal",
    "unseal",
    "verify_key",
    "parse_public_key",
    "format_cs1",
]

log = logging.getLogger("pyuftp")

#: Prefix of a published CS1 public key string.
CS1_PREFIX = "cs1."
#: Length of an Ed25519 signature, i.e. of the header of every sealed message.
SIGNATURE_BYTES: int = nacl.bindings.crypto_sign_BYTES  # 64
#: Length of an Ed25519 public key.
PUBLIC_KEY_BYTES: int = nacl.bindings.crypto_sign_PUBLICKEYBYTES  # 32
#: Length of a libsodium Ed25519 secret key (seed + public key).
SECRET_KEY_BYTES: int = nacl.bindings.crypto_sign_SECRETKEYBYTES  # 64
#: Length of an Ed25519 seed.
SEED_BYTES: int = nacl.bindings.crypto_sign_SEEDBYTES  # 32
#: Length of the curve25519 encryption key that may follow the signing key in a cs1 string.
_ENCRYPTION_KEY_BYTES = 32

_BytesLike = (bytes, bytearray, memoryview)

# Point validation needs libsodium's ed25519 core functions; PyNaCl built against a
# "minimal" libsodium lacks them, in which case only lengths are checked.
_CAN_VALIDATE_POINTS: bool = bool(getattr(nacl.bindings, "has_crypto_core_ed25519", False))


# --------------------------------------------------------------------------- helpers


def _b64decode(text: str, what: str) -> bytes:
    """Strictly decode standard base64 ``text``; raise :class:`InvalidKey` naming ``what``."""
    stripped = text.strip()
    if not stripped:
        raise InvalidKey(f"{what} is empty")
    try:
        return base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        # ValueError covers non-ASCII text; binascii.Error bad characters and padding.
        raise InvalidKey(
            f"{what} is not valid base64 (standard alphabet A-Z a-z 0-9 + /, with '=' padding)"
        ) from None


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _short(text: str, limit: int = 16) -> str:
    """A shortened public value for error messages (never used for private keys)."""
    return text if len(text) <= limit else text[:limit] + "..."


def _check_point(raw: bytes) -> None:
    """Reject 32 bytes that libsodium could never verify a signature with."""
    if _CAN_VALIDATE_POINTS and not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
        raise InvalidKey(
            "public key is 32 bytes but not a valid Ed25519 public key "
            "(not a usable point on the curve); no signature could ever verify with it"
        )


def _decode_public(key: object) -> tuple[bytes, bytes | None]:
    """Decode any accepted public key form to (signing key, encryption key or None)."""
    if isinstance(key, VerifyKey):
        return key._raw, key._encryption_key
    if isinstance(key, SigningKey):
        return key._public_raw, None
    if isinstance(key, _BytesLike):
        raw = bytes(key)
        if len(raw) != PUBLIC_KEY_BYTES:
            hint = ""
            if len(raw) == SECRET_KEY_BYTES:
                hint = (
                    " (64 raw bytes could be a private key; pass a cs1. string for a "
                    "joined signing+encryption key)"
                )
            elif raw.startswith(CS1_PREFIX.encode("ascii")) or len(raw) in (44, 48, 92):
                hint = " (if this is base64 or cs1. text, pass it as str)"
            raise InvalidKey(
                f"raw public key must be {PUBLIC_KEY_BYTES} bytes, got {len(raw)} bytes{hint}"
            )
        _check_point(raw)
        return raw, None
    if isinstance(key, str):
        text = key.strip()
        if text[: len(CS1_PREFIX)].lower() == CS1_PREFIX:
            body = text[len(CS1_PREFIX):]
            raw = _b64decode(body, "cs1 public key")
            if len(raw) == PUBLIC_KEY_BYTES:
                _check_point(raw)
                return raw, None
            if len(raw) == PUBLIC_KEY_BYTES + _ENCRYPTION_KEY_BYTES:
                signing = raw[:PUBLIC_KEY_BYTES]
                _check_point(signing)
                return signing, raw[PUBLIC_KEY_BYTES:]
            raise InvalidKey(
                f"cs1 public key must contain base64 of {PUBLIC_KEY_BYTES} bytes (signing key) "
                f"or {PUBLIC_KEY_BYTES + _ENCRYPTION_KEY_BYTES} bytes (signing key + encryption "
                f"key), got {len(raw)} bytes in {_short(text, 24)!r}"
            )
        raw = _b64decode(text, "public key")
        if len(raw) != PUBLIC_KEY_BYTES:
            hint = ""
            if len(raw) == SECRET_KEY_BYTES:
                hint = (
                    " (64 bytes looks like a private key, or a signing+encryption key "
                    "pair missing its 'cs1.' prefix)"
                )
            raise InvalidKey(
                f"public key must be base64 of {PUBLIC_KEY_BYTES} bytes (Ed25519 public key) "
                f"or a 'cs1.' string, got {len(raw)} bytes in {_short(text)!r}{hint}"
            )
        _check_point(raw)
        return raw, None
    raise InvalidKey(
        "public key must be a base64 or 'cs1.' string, bytes or a VerifyKey, "
        f"got {type(key).__name__}"
    )


def _secret_from_seed(seed: bytes) -> tuple[bytes, bytes]:
    """(public key, 64-byte secret key) for a 32-byte seed."""
    public, secret = nacl.bindings.crypto_sign_seed_keypair(seed)
    return public, secret


# --------------------------------------------------------------------------- keys


class SigningKey:
    """A party's private Ed25519 signing key, decoded and checked once.

    ``key`` is the base64 string of the 64-byte libsodium secret key (seed followed by
    public key), as returned by :func:`generate_keypair`, or base64 of a bare 32-byte
    seed; raw ``bytes`` of either length are accepted as well.  A 64-byte key whose
    public half does not belong to its seed is rejected, since it would produce
    signatures nobody can verify.

    Anything malformed raises :class:`~pyuftp.exceptions.InvalidKey`.  The error never
    contains the key material itself.

    >>> private, public = generate_keypair()
    >>> key = SigningKey(private)
    >>> key.public_key == public
    True
    """

    __slots__ = ("_secret", "_public_raw", "_public_b64")

    _secret: bytes
    _public_raw: bytes
    _public_b64: str

    def __init__(self, key: Union[str, bytes, bytearray, memoryview, "SigningKey"]) -> None:
        if isinstance(key, SigningKey):
            self._secret, self._public_raw, self._public_b64 = (
                key._secret,
                key._public_raw,
                key._public_b64,
            )
            return
        if isinstance(key, str):
            if key.strip()[: len(CS1_PREFIX)].lower() == CS1_PREFIX:
                raise InvalidKey("private key looks like a 'cs1.' public key, not a private key")
            raw = _b64decode(key, "private key")
            text_hint = ""
            source = "base64 of "
        elif isinstance(key, _BytesLike):
            raw = bytes(key)
            text_hint = ""
            if len(raw) not in (SECRET_KEY_BYTES, SEED_BYTES) and len(raw) in (44, 88):
                text_hint = " (if this is base64 text, pass it as str)"
            source = ""
        else:
            raise InvalidKey(
                f"private key must be a base64 string or bytes, got {type(key).__name__}"
            )

        if len(raw) == SECRET_KEY_BYTES:
            public, secret = _secret_from_seed(raw[:SEED_BYTES])
            if not hmac.compare_digest(public, raw[SEED_BYTES:]):
                raise InvalidKey(
                    "private key is 64 bytes but its last 32 bytes are not the public key "
                    "of its first 32 bytes (seed); the key is corrupt or not a libsodium "
                    "Ed25519 secret key"
                )
        elif len(raw) == SEED_BYTES:
            public, secret = _secret_from_seed(raw)
            log.debug("signing key derived from a 32-byte seed")
        else:
            raise InvalidKey(
                f"private key must be {source}{SECRET_KEY_BYTES} bytes (libsodium secret key) "
                f"or {source}{SEED_BYTES} bytes (seed), got {len(raw)} bytes{text_hint}"
            )

        self._secret = secret
        self._public_raw = public
        self._public_b64 = _b64encode(public)
        log.debug("loaded signing key for public key %s", self._public_b64)

    @classmethod
    def generate(cls) -> "SigningKey":
        """A new random signing key."""
        public, secret = nacl.bindings.crypto_sign_keypair()
        return cls(secret)

    @property
    def public_key(self) -> str:
        """Base64 of the 32-byte public key."""
        return self._public_b64

    @property
    def public_key_bytes(self) -> bytes:
        """The 32-byte public key."""
        return self._public_raw

    @property
    def public_key_cs1(self) -> str:
        """The public key as a ``cs1.`` string (32-byte signing key only)."""
        return CS1_PREFIX + self._public_b64

    @property
    def verify_key(self) -> "VerifyKey":
        """The matching :class:`VerifyKey`."""
        return VerifyKey(self._public_raw)

    @property
    def private_key(self) -> str:
        """Base64 of the 64-byte libsodium secret key (handle with care)."""
        return _b64encode(self._secret)

    def seal(self, data: bytes | bytearray | memoryview) -> bytes:
        """Sign ``data``; return the 64-byte signature followed by ``data``."""
        if not isinstance(data, _BytesLike):
            hint = " (encode str first, e.g. xml.encode('utf-8'))" if isinstance(data, str) else ""
            raise TypeError(f"data to seal must be bytes, got {type(data).__name__}{hint}")
        return nacl.bindings.crypto_sign(bytes(data), self._secret)

    def __repr__(self) -> str:
        # Never show the private key.
        return f"SigningKey(public_key={self._public_b64!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigningKey):
            return NotImplemented
        return hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(("SigningKey", self._public_raw))


class VerifyKey:
    """A party's public Ed25519 key, used to unseal (verify) its messages.

    ``key`` may be:

    * base64 of the 32-byte public key;
    * a ``cs1.`` string holding base64 of 32 bytes (signing key) or 64 bytes (signing
      key followed by encryption key; the encryption key is kept in
      :attr:`encryption_key` but not used here);
    * the raw 32 bytes;
    * another :class:`VerifyKey` or a :class:`SigningKey` (its public half).

    Leading/trailing whitespace around strings is ignored and the ``cs1.`` prefix is
    matched case-insensitively.  Anything else, including 32 bytes that are not a valid
    Ed25519 public key, raises :class:`~pyuftp.exceptions.InvalidKey`.

    Instances compare equal and hash alike when the signing keys are equal, so they can
    be kept in sets (e.g. the old and new key during a key rotation).
    """

    __slots__ = ("_raw", "_encryption_key", "_b64")

    _raw: bytes
    _encryption_key: bytes | None
    _b64: str

    def __init__(self, key: Union[str, bytes, bytearray, memoryview, "VerifyKey", SigningKey]) -> None:
        self._raw, self._encryption_key = _decode_public(key)
        self._b64 = _b64encode(self._raw)

    @property
    def public_key(self) -> str:
        """Base64 of the 32-byte public signing key."""
        return self._b64

    @property
    def public_key_bytes(self) -> bytes:
        """The 32-byte public signing key."""
        return self._raw

    @property
    def public_key_cs1(self) -> str:
        """The public signing key as a ``cs1.`` string (32 bytes, no encryption key)."""
        return CS1_PREFIX + self._b64

    @property
    def encryption_key(self) -> bytes | None:
        """The 32-byte encryption key if the key was given as a 64-byte ``cs1.`` string."""
        return self._encryption_key

    def unseal(self, sealed: bytes | bytearray | memoryview) -> bytes:
        """Verify ``sealed`` (signature + message) and return the message bytes.

        Raises :class:`~pyuftp.exceptions.InvalidSignature` if ``sealed`` is shorter
        than a signature, was altered, or was not signed with this key; ``TypeError`` if
        it is not bytes.
        """
        if not isinstance(sealed, _BytesLike):
            raise TypeError(f"sealed message must be bytes, got {type(sealed).__name__}")
        data = bytes(sealed)
        if len(data) < SIGNATURE_BYTES:
            log.debug(
                "sealed message of %d bytes is shorter than a signature (key %s)",
                len(data),
                self._b64,
            )
            raise InvalidSignature(
                f"sealed message is {len(data)} bytes, shorter than the "
                f"{SIGNATURE_BYTES}-byte signature it must start with"
            )
        try:
            return nacl.bindings.crypto_sign_open(data, self._raw)
        except nacl.exceptions.CryptoError:
            log.debug("signature check failed for %d-byte sealed message (key %s)", len(data), self._b64)
            raise InvalidSignature(
                f"signature does not verify with public key {self._b64} "
                "(message altered, or signed with another key)"
            ) from None

    def __repr__(self) -> str:
        return f"VerifyKey({self._b64!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifyKey):
            return NotImplemented
        return self._raw == other._raw

    def __hash__(self) -> int:
        return hash(("VerifyKey", self._raw))


# --------------------------------------------------------------------------- functions


def generate_keypair() -> tuple[str, str]:
    """Create a new Ed25519 key pair.

    Returns ``(private_key, public_key)``: base64 of the 64-byte libsodium secret key
    and base64 of the 32-byte public key.
    """
    public, secret = nacl.bindings.crypto_sign_keypair()
    return _b64encode(secret), _b64encode(public)


def seal(data: bytes, private_key: str | bytes | SigningKey) -> bytes:
    """Sign ``data`` with ``private_key``; return signature (64 bytes) + ``data``.

    Pass a :class:`SigningKey` when sealing many messages, so the key is decoded once.
    """
    key = private_key if isinstance(private_key, SigningKey) else SigningKey(private_key)
    return key.seal(data)


def unseal(sealed: bytes, public_key: str | bytes | VerifyKey) -> bytes:
    """Verify ``sealed`` with ``public_key`` (base64, ``cs1.`` or a :class:`VerifyKey`).

    Returns the message bytes; raises :class:`~pyuftp.exceptions.InvalidSignature` if
    it does not verify and :class:`~pyuftp.exceptions.InvalidKey` if the key is bad.
    """
    return verify_key(public_key).unseal(sealed)


def verify_key(key: str | bytes | VerifyKey | SigningKey) -> VerifyKey:
    """A :class:`VerifyKey` for ``key``, decoded and checked once per distinct key string.

    A service looks the sender's key up for every message and gets the same string back each
    time; checking that it is a valid curve point costs more than verifying a signature, so
    the decoded key is remembered (for up to 1024 keys).
    """
    if isinstance(key, VerifyKey):
        return key
    if isinstance(key, str):
        return _verify_key_of(key)
    return VerifyKey(key)


@lru_cache(maxsize=1024)
def _verify_key_of(text: str) -> VerifyKey:
    return VerifyKey(text)


def parse_public_key(text: str | bytes | VerifyKey) -> bytes:
    """Return the 32-byte signing public key from base64 or a ``cs1.`` string.

    For a 64-byte ``cs1.`` key (signing + encryption key) the first 32 bytes are
    returned.  Raises :class:`~pyuftp.exceptions.InvalidKey` for anything else.
    """
    return _decode_public(text)[0]


def format_cs1(
    public_key: str | bytes | VerifyKey | SigningKey,
    encryption_key: bytes | None = None,
) -> str:
    """Format a public signing key as a ``cs1.`` string, ready to publish.

    ``public_key`` may be in any form :class:`VerifyKey` accepts (a :class:`SigningKey`
    gives its public half).  Without ``encryption_key`` the result holds the 32-byte
    signing key; with a 32-byte ``encryption_key`` it holds the 64-byte join (signing key
    first), as the CS1 scheme publishes both.
    """
    signing = _decode_public(public_key)[0]
    if encryption_key is None:
        return CS1_PREFIX + _b64encode(signing)
    if not isinstance(encryption_key, _BytesLike) or len(encryption_key) != _ENCRYPTION_KEY_BYTES:
        got = (
            f"{len(encryption_key)} bytes"
            if isinstance(encryption_key, _BytesLike)
            else type(encryption_key).__name__
        )
        raise InvalidKey(f"encryption key must be {_ENCRYPTION_KEY_BYTES} raw bytes, got {got}")
    return CS1_PREFIX + _b64encode(signing + bytes(encryption_key))
