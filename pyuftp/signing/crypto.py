"""CS1 keys for UFTP: Ed25519 sealing (libsodium ``crypto_sign``) and unsealing via PyNaCl.

* private key: strict base64 of the 64-byte libsodium secret key (seed + public key) from
  :func:`generate_keypair`, or those 64 raw bytes (a bare seed: :meth:`SigningKey.from_seed`);
* public key: strict base64 of the 32-byte Ed25519 key, those 32 raw bytes, or ``cs1.`` +
  base64 of 32 bytes (signing key) or 64 bytes (signing key + encryption key).

A bad or misplaced key raises :class:`~pyuftp.exceptions.InvalidKey`, a sealed message that
does not verify :class:`~pyuftp.exceptions.InvalidSignature`; neither ever quotes a key.
"""
from __future__ import annotations

import base64
import hmac
import logging
from functools import lru_cache
from typing import Union

import nacl.bindings
import nacl.exceptions

from pyuftp.exceptions import InvalidKey, InvalidSignature

log = logging.getLogger(__name__)

CS1_PREFIX = "cs1."
SIGNATURE_BYTES: int = nacl.bindings.crypto_sign_BYTES  # 64
PUBLIC_KEY_BYTES: int = nacl.bindings.crypto_sign_PUBLICKEYBYTES  # 32
SECRET_KEY_BYTES: int = nacl.bindings.crypto_sign_SECRETKEYBYTES  # 64: seed + public key
SEED_BYTES: int = nacl.bindings.crypto_sign_SEEDBYTES  # 32
_BYTES = (bytes, bytearray, memoryview)
_CHECK_POINTS = bool(getattr(nacl.bindings, "has_crypto_core_ed25519", False))

KeyInput = Union[str, bytes, bytearray, memoryview]
PublicKeyInput = Union[str, bytes, bytearray, memoryview, "VerifyKey", "SigningKey"]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _parse(key: object, private: bool) -> tuple[bytes, bytes | None]:
    """The one key parser: (64-byte secret key, None) if ``private``, else (32-byte public
    signing key, 32-byte encryption key or None).  Error messages never quote the key.
    A libsodium secret key is a seed followed by that seed's public key."""
    role = "private key" if private else "public key"
    if isinstance(key, _BYTES):
        raw, cs1 = bytes(key), False
    elif not isinstance(key, str):
        forms = "a base64 str or 64 raw bytes" if private else "a str or 32 raw bytes"
        raise InvalidKey(f"{role} must be {forms}, got {type(key).__name__}")
    elif not key.isascii():
        raise InvalidKey(f"{role} contains non-ASCII characters; expected base64 text")
    else:
        text = key.strip()
        cs1 = text[:4].lower() == CS1_PREFIX
        if cs1 and private:
            raise InvalidKey("private key is a 'cs1.' string: this is a published public key")
        if cs1 and not text.startswith(CS1_PREFIX):
            raise InvalidKey(f"{role}: the 'cs1.' prefix must be lower case")
        body = text[4:] if cs1 else text
        try:
            raw = base64.b64decode(body, validate=True)
            if _b64(raw) != body:  # excess padding or non-zero spare bits
                raise ValueError
        except ValueError:  # includes binascii.Error
            raise InvalidKey(f"{role} is not strict base64 (A-Z a-z 0-9 + / and '=' padding)") \
                from None
    form = "a cs1. string of" if cs1 else "base64 of" if isinstance(key, str) else "raw"
    is_secret = len(raw) == SECRET_KEY_BYTES and hmac.compare_digest(
        nacl.bindings.crypto_sign_seed_keypair(raw[:SEED_BYTES])[0], raw[SEED_BYTES:])
    if private:
        if len(raw) == SEED_BYTES:
            raise InvalidKey("private key is 32 bytes, but 32 bytes is the length of a public key "
                             "(or a bare seed); pass the 64-byte private key from "
                             "generate_keypair(), "
                             "or use SigningKey.from_seed(seed) if this really is a seed")
        if len(raw) != SECRET_KEY_BYTES:
            raise InvalidKey(f"private key must be {form} 64 bytes, got {len(raw)} bytes")
        if not is_secret:
            raise InvalidKey("private key is 64 bytes but its second half is not the public key "
                             "of its first half (the seed): the key is corrupt")
        return raw, None
    if is_secret:
        raise InvalidKey(f"public key is {form} 64 bytes whose second half is the public key of "
                         "the first: this looks like a private key; publish/pass the public key")
    encryption = raw[PUBLIC_KEY_BYTES:] if cs1 and len(raw) == 64 else None
    raw = raw[:PUBLIC_KEY_BYTES] if encryption is not None else raw
    if len(raw) != PUBLIC_KEY_BYTES:
        hint = (" or 64 bytes (signing + encryption key)" if cs1 else
                " (give a signing + encryption key as a 'cs1.' string)" if len(raw) == 64
                else " (or a 'cs1.' string)" if form == "base64 of" else "")
        raise InvalidKey(f"public key must be {form} 32 bytes{hint}, got {len(raw)} bytes")
    if _CHECK_POINTS and not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
        raise InvalidKey("public key is 32 bytes but not a valid Ed25519 point, so it is unusable")
    return raw, encryption


class _Key:
    __slots__ = ("_public", "_b64")

    def __init__(self, public: bytes) -> None:
        self._public, self._b64 = public, _b64(public)

    @property
    def public_key(self) -> str:
        """Base64 of the 32-byte public signing key."""
        return self._b64

    @property
    def public_key_bytes(self) -> bytes:
        return self._public

    @property
    def public_key_cs1(self) -> str:
        return CS1_PREFIX + self._b64

    def __repr__(self) -> str:
        return f"{type(self).__name__}(public_key={self._b64!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Key) or type(other) is not type(self):
            return NotImplemented
        return hmac.compare_digest(self._public, other._public)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._public))


class SigningKey(_Key):
    """A private key (see the module docstring for its forms); :meth:`seal` signs messages."""

    __slots__ = ("_secret",)
    _secret: bytes

    def __init__(self, key: KeyInput | SigningKey) -> None:
        secret = key._secret if isinstance(key, SigningKey) else _parse(key, True)[0]
        super().__init__(secret[SEED_BYTES:])
        self._secret = secret

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(nacl.bindings.crypto_sign_keypair()[1])

    @classmethod
    def from_seed(cls, seed: bytes | bytearray | memoryview) -> SigningKey:
        """The signing key of a bare 32-byte Ed25519 seed (raw bytes, as PyNaCl stores it)."""
        if not isinstance(seed, _BYTES) or len(seed) != SEED_BYTES:
            raise InvalidKey(f"seed must be {SEED_BYTES} raw bytes (not base64 text)")
        return cls(nacl.bindings.crypto_sign_seed_keypair(bytes(seed))[1])

    @property
    def private_key(self) -> str:
        """Base64 of the 64-byte libsodium secret key: keep it secret."""
        return _b64(self._secret)

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self)

    def seal(self, data: bytes | bytearray | memoryview) -> bytes:
        """The 64-byte signature of ``data`` followed by ``data``."""
        if not isinstance(data, _BYTES):
            raise TypeError(f"data to seal must be bytes (encode str first), "
                            f"not {type(data).__name__}")
        return nacl.bindings.crypto_sign(bytes(data), self._secret)


class VerifyKey(_Key):
    """A public key (see the module docstring for its forms); :meth:`unseal` verifies messages."""

    __slots__ = ("_encryption_key",)
    _encryption_key: bytes | None

    def __init__(self, key: PublicKeyInput) -> None:
        if isinstance(key, _Key):
            public = key._public
            encryption = key._encryption_key if isinstance(key, VerifyKey) else None
        else:
            public, encryption = _parse(key, False)
        super().__init__(public)
        self._encryption_key = encryption

    @property
    def encryption_key(self) -> bytes | None:
        """The 32-byte encryption key if given in a 64-byte ``cs1.`` string, else None."""
        return self._encryption_key

    def unseal(self, sealed: bytes | bytearray | memoryview) -> bytes:
        """Check signature + message and return the message, else raise InvalidSignature."""
        if not isinstance(sealed, _BYTES):
            raise TypeError(f"sealed message must be bytes, got {type(sealed).__name__}")
        data = bytes(sealed)
        if len(data) < SIGNATURE_BYTES:
            raise InvalidSignature(
                f"sealed message of {len(data)} bytes is shorter than a signature")
        try:
            return nacl.bindings.crypto_sign_open(data, self._public)
        except nacl.exceptions.CryptoError:
            log.debug("signature check failed for a %d-byte sealed message", len(data))
            raise InvalidSignature("signature does not verify with the sender's public key "
                                   "(message altered, or signed with another key)") from None


def generate_keypair() -> tuple[str, str]:
    """A new key pair: (base64 of the 64-byte private key, base64 of the 32-byte public key)."""
    public, secret = nacl.bindings.crypto_sign_keypair()
    return _b64(secret), _b64(public)


_cached_verify_key = lru_cache(maxsize=1024)(VerifyKey)


def verify_key(key: PublicKeyInput) -> VerifyKey:
    """A VerifyKey for ``key``; str keys are checked once and cached (up to 1024)."""
    if isinstance(key, str):
        return _cached_verify_key(key)
    return key if isinstance(key, VerifyKey) else VerifyKey(key)


def format_cs1(public_key: PublicKeyInput, encryption_key: bytes | None = None) -> str:
    """``cs1.`` + base64 of the public signing key, followed by ``encryption_key`` if given."""
    signing = verify_key(public_key).public_key_bytes
    if encryption_key is None:
        return CS1_PREFIX + _b64(signing)
    if not isinstance(encryption_key, _BYTES) or len(encryption_key) != 32:
        raise InvalidKey("encryption key must be 32 raw bytes")
    return CS1_PREFIX + _b64(signing + bytes(encryption_key))
