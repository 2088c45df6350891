"""Tests for pyuftp.crypto: CS1 sealing/unsealing with real Ed25519 keys."""
from __future__ import annotations

import base64
import os

import nacl.bindings
import nacl.signing
import pytest

from pyuftp.crypto import (
    SigningKey,
    VerifyKey,
    format_cs1,
    generate_keypair,
    parse_public_key,
    seal,
    unseal,
)
from pyuftp.exceptions import InvalidKey, InvalidSignature, PyUFTPError

MESSAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<FlexRequest Version="3.0.0" SenderDomain="dso.example.com" '
    b'RecipientDomain="agr.example.com" MessageID="0b8e1a8a-7c1d-4c1b-9a4e-0d1e2f3a4b5c"/>'
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@pytest.fixture(scope="module")
def keypair() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture(scope="module")
def other_keypair() -> tuple[str, str]:
    return generate_keypair()


# --------------------------------------------------------------------------- key generation


def test_generate_keypair_lengths() -> None:
    private, public = generate_keypair()
    assert isinstance(private, str) and isinstance(public, str)
    assert len(base64.b64decode(private, validate=True)) == 64
    assert len(base64.b64decode(public, validate=True)) == 32
    # libsodium layout: seed followed by the public key
    assert base64.b64decode(private)[32:] == base64.b64decode(public)


def test_generate_keypair_is_random() -> None:
    assert generate_keypair() != generate_keypair()


def test_signing_key_properties(keypair: tuple[str, str]) -> None:
    private, public = keypair
    key = SigningKey(private)
    assert key.public_key == public
    assert key.public_key_bytes == base64.b64decode(public)
    assert key.public_key_cs1 == "cs1." + public
    assert key.private_key == private
    assert key.verify_key == VerifyKey(public)
    assert private not in repr(key)
    assert public in repr(key)


def test_signing_key_generate_roundtrip() -> None:
    key = SigningKey.generate()
    assert key.verify_key.unseal(key.seal(MESSAGE)) == MESSAGE


# --------------------------------------------------------------------------- seal / unseal


def test_round_trip_module_functions(keypair: tuple[str, str]) -> None:
    private, public = keypair
    sealed = seal(MESSAGE, private)
    assert isinstance(sealed, bytes)
    assert len(sealed) == 64 + len(MESSAGE)
    assert sealed[64:] == MESSAGE
    assert unseal(sealed, public) == MESSAGE


def test_round_trip_key_objects_reused(keypair: tuple[str, str]) -> None:
    private, public = keypair
    signer, verifier = SigningKey(private), VerifyKey(public)
    for body in (b"", b"x", MESSAGE, os.urandom(100_000)):
        assert verifier.unseal(signer.seal(body)) == body
    assert unseal(seal(MESSAGE, signer), verifier) == MESSAGE


def test_round_trip_bytes_like_inputs(keypair: tuple[str, str]) -> None:
    private, public = keypair
    sealed = seal(bytearray(MESSAGE), private)
    assert unseal(memoryview(sealed), public) == MESSAGE
    assert unseal(bytearray(sealed), public) == MESSAGE


def test_round_trip_with_cs1_key(keypair: tuple[str, str]) -> None:
    private, public = keypair
    sealed = seal(MESSAGE, private)
    assert unseal(sealed, "cs1." + public) == MESSAGE
    assert unseal(sealed, SigningKey(private).public_key_cs1) == MESSAGE


def test_tampered_body_rejected(keypair: tuple[str, str]) -> None:
    private, public = keypair
    sealed = bytearray(seal(MESSAGE, private))
    sealed[64 + 10] ^= 0x01
    with pytest.raises(InvalidSignature):
        unseal(bytes(sealed), public)


def test_tampered_last_byte_rejected(keypair: tuple[str, str]) -> None:
    private, public = keypair
    sealed = bytearray(seal(MESSAGE, private))
    sealed[-1] ^= 0x80
    with pytest.raises(InvalidSignature):
        unseal(bytes(sealed), public)


@pytest.mark.parametrize("index", [0, 31, 32, 63])
def test_tampered_signature_rejected(keypair: tuple[str, str], index: int) -> None:
    private, public = keypair
    sealed = bytearray(seal(MESSAGE, private))
    sealed[index] ^= 0x01
    with pytest.raises(InvalidSignature):
        unseal(bytes(sealed), public)


def test_appended_and_truncated_body_rejected(keypair: tuple[str, str]) -> None:
    private, public = keypair
    sealed = seal(MESSAGE, private)
    with pytest.raises(InvalidSignature):
        unseal(sealed + b" ", public)
    with pytest.raises(InvalidSignature):
        unseal(sealed[:-1], public)


def test_key_of_another_party_rejected(
    keypair: tuple[str, str], other_keypair: tuple[str, str]
) -> None:
    private, _ = keypair
    _, other_public = other_keypair
    sealed = seal(MESSAGE, private)
    with pytest.raises(InvalidSignature) as info:
        unseal(sealed, other_public)
    assert other_public in str(info.value)


@pytest.mark.parametrize("length", [0, 1, 32, 63])
def test_too_short_sealed_message(keypair: tuple[str, str], length: int) -> None:
    _, public = keypair
    with pytest.raises(InvalidSignature, match="shorter than"):
        unseal(b"\x00" * length, public)


def test_bare_signature_of_empty_message_is_valid(keypair: tuple[str, str]) -> None:
    private, public = keypair
    sealed = seal(b"", private)
    assert len(sealed) == 64
    assert unseal(sealed, public) == b""


def test_garbage_of_signature_length_rejected(keypair: tuple[str, str]) -> None:
    _, public = keypair
    with pytest.raises(InvalidSignature):
        unseal(os.urandom(64 + 20), public)


def test_invalid_signature_is_not_value_error(keypair: tuple[str, str]) -> None:
    _, public = keypair
    with pytest.raises(InvalidSignature) as info:
        unseal(b"short", public)
    assert not isinstance(info.value, ValueError)
    assert isinstance(info.value, PyUFTPError)
    assert not type(info.value).__module__.startswith("nacl")


def test_non_bytes_data_is_type_error(keypair: tuple[str, str]) -> None:
    private, public = keypair
    with pytest.raises(TypeError, match="encode"):
        seal("text", private)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        unseal("text", public)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- interoperability


def test_interop_our_seal_raw_open(keypair: tuple[str, str]) -> None:
    private, public = keypair
    sealed = seal(MESSAGE, private)
    assert nacl.bindings.crypto_sign_open(sealed, base64.b64decode(public)) == MESSAGE


def test_interop_raw_sign_our_unseal() -> None:
    pk, sk = nacl.bindings.crypto_sign_keypair()
    sealed = nacl.bindings.crypto_sign(MESSAGE, sk)
    assert unseal(sealed, b64(pk)) == MESSAGE
    assert unseal(sealed, VerifyKey(pk)) == MESSAGE
    # our sealing with the same raw key gives byte-identical output (Ed25519 is deterministic)
    assert seal(MESSAGE, b64(sk)) == sealed
    assert seal(MESSAGE, sk) == sealed


def test_interop_nacl_signing_objects() -> None:
    nacl_key = nacl.signing.SigningKey.generate()
    seed = bytes(nacl_key)  # PyNaCl encodes signing keys as the 32-byte seed
    ours = SigningKey(b64(seed))
    assert ours.public_key_bytes == bytes(nacl_key.verify_key)
    assert SigningKey(seed) == ours
    sealed = ours.seal(MESSAGE)
    assert nacl_key.verify_key.verify(sealed) == MESSAGE
    assert unseal(bytes(nacl_key.sign(MESSAGE)), b64(bytes(nacl_key.verify_key))) == MESSAGE


# --------------------------------------------------------------------------- cs1 strings


def test_cs1_with_32_bytes(keypair: tuple[str, str]) -> None:
    _, public = keypair
    raw = base64.b64decode(public)
    key = VerifyKey("cs1." + public)
    assert key.public_key_bytes == raw
    assert key.encryption_key is None
    assert parse_public_key("cs1." + public) == raw


def test_cs1_with_64_bytes(keypair: tuple[str, str]) -> None:
    private, public = keypair
    raw = base64.b64decode(public)
    _, box_public = nacl.bindings.crypto_box_keypair()
    joined = "cs1." + b64(raw + box_public)
    key = VerifyKey(joined)
    assert key.public_key_bytes == raw
    assert key.public_key == public
    assert key.encryption_key == box_public
    assert parse_public_key(joined) == raw
    assert unseal(seal(MESSAGE, private), joined) == MESSAGE
    assert format_cs1(raw, box_public) == joined


def test_cs1_prefix_case_and_whitespace(keypair: tuple[str, str]) -> None:
    _, public = keypair
    raw = base64.b64decode(public)
    assert parse_public_key("  CS1." + public + "\n") == raw
    assert parse_public_key(" " + public + " ") == raw


def test_parse_public_key_base64(keypair: tuple[str, str]) -> None:
    _, public = keypair
    assert parse_public_key(public) == base64.b64decode(public)


def test_format_cs1_forms(keypair: tuple[str, str]) -> None:
    private, public = keypair
    expected = "cs1." + public
    raw = base64.b64decode(public)
    assert format_cs1(public) == expected
    assert format_cs1(raw) == expected
    assert format_cs1(expected) == expected
    assert format_cs1(VerifyKey(public)) == expected
    assert format_cs1(SigningKey(private)) == expected
    assert parse_public_key(format_cs1(public)) == raw


@pytest.mark.parametrize("bad", [b"\x00" * 31, b"\x00" * 33, "not bytes"])
def test_format_cs1_bad_encryption_key(keypair: tuple[str, str], bad: object) -> None:
    _, public = keypair
    with pytest.raises(InvalidKey, match="encryption key"):
        format_cs1(public, bad)  # type: ignore[arg-type]


def test_verify_key_equality_and_hash(keypair: tuple[str, str]) -> None:
    _, public = keypair
    keys = {VerifyKey(public), VerifyKey("cs1." + public), VerifyKey(base64.b64decode(public))}
    assert len(keys) == 1


# --------------------------------------------------------------------------- bad private keys


@pytest.mark.parametrize("length", [1, 16, 31, 33, 63, 65, 128])
def test_private_key_wrong_length(length: int) -> None:
    with pytest.raises(InvalidKey) as info:
        SigningKey(b64(os.urandom(length)))
    message = str(info.value)
    assert "private key" in message
    assert "64 bytes" in message
    assert f"got {length} bytes" in message


@pytest.mark.parametrize("length", [31, 33, 63, 65])
def test_private_key_wrong_length_raw_bytes(length: int) -> None:
    with pytest.raises(InvalidKey, match=f"got {length} bytes"):
        SigningKey(os.urandom(length))


@pytest.mark.parametrize(
    "text", ["not base64!", "abc", "****", "ab=cd", "é" * 8, "AAAA-_AA", "cs1"]
)
def test_private_key_not_base64(text: str) -> None:
    with pytest.raises(InvalidKey, match="base64"):
        SigningKey(text)


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_private_key_empty(text: str) -> None:
    with pytest.raises(InvalidKey, match="empty"):
        SigningKey(text)


def test_private_key_empty_bytes() -> None:
    with pytest.raises(InvalidKey, match="got 0 bytes"):
        SigningKey(b"")


@pytest.mark.parametrize("value", [None, 42, 4.2, ["a"], {"k": "v"}])
def test_private_key_wrong_type(value: object) -> None:
    with pytest.raises(InvalidKey) as info:
        SigningKey(value)  # type: ignore[arg-type]
    assert type(value).__name__ in str(info.value)


def test_private_key_wrong_type_via_seal() -> None:
    with pytest.raises(InvalidKey, match="NoneType"):
        seal(MESSAGE, None)  # type: ignore[arg-type]


def test_private_key_given_cs1_public_key(keypair: tuple[str, str]) -> None:
    _, public = keypair
    with pytest.raises(InvalidKey, match="cs1"):
        SigningKey("cs1." + public)


def test_private_key_with_mismatched_public_half(
    keypair: tuple[str, str], other_keypair: tuple[str, str]
) -> None:
    private, _ = keypair
    _, other_public = other_keypair
    spliced = base64.b64decode(private)[:32] + base64.b64decode(other_public)
    with pytest.raises(InvalidKey, match="public key"):
        SigningKey(b64(spliced))


def test_private_key_base64_text_as_bytes_hint(keypair: tuple[str, str]) -> None:
    private, _ = keypair
    with pytest.raises(InvalidKey, match="pass it as str"):
        SigningKey(private.encode("ascii"))


def test_private_key_error_does_not_leak_key_material() -> None:
    secret = b64(os.urandom(63))
    with pytest.raises(InvalidKey) as info:
        SigningKey(secret)
    assert secret not in str(info.value)
    assert secret[:8] not in str(info.value)


def test_seed_accepted(keypair: tuple[str, str]) -> None:
    private, public = keypair
    seed = base64.b64decode(private)[:32]
    key = SigningKey(b64(seed))
    assert key.public_key == public
    assert key.private_key == private
    assert unseal(key.seal(MESSAGE), public) == MESSAGE


def test_invalid_key_is_value_error_and_pyuftp_error() -> None:
    with pytest.raises(ValueError):
        SigningKey("x")
    with pytest.raises(PyUFTPError):
        VerifyKey("x")


# --------------------------------------------------------------------------- bad public keys


@pytest.mark.parametrize("length", [31, 33, 63, 65, 1, 16])
def test_public_key_wrong_length(length: int) -> None:
    with pytest.raises(InvalidKey) as info:
        VerifyKey(b64(os.urandom(length)))
    message = str(info.value)
    assert "public key" in message
    assert "32 bytes" in message
    assert f"got {length} bytes" in message


@pytest.mark.parametrize("length", [31, 33, 63, 65])
def test_public_key_wrong_length_raw_bytes(length: int) -> None:
    with pytest.raises(InvalidKey, match=f"got {length} bytes"):
        VerifyKey(os.urandom(length))


def test_public_key_64_bytes_without_prefix_hint(keypair: tuple[str, str]) -> None:
    private, _ = keypair
    with pytest.raises(InvalidKey, match="cs1"):
        VerifyKey(private)


@pytest.mark.parametrize("length", [1, 31, 33, 48, 63, 65, 96])
def test_cs1_wrong_length(length: int) -> None:
    with pytest.raises(InvalidKey, match=f"got {length} bytes"):
        VerifyKey("cs1." + b64(os.urandom(length)))


def test_cs1_empty_body() -> None:
    with pytest.raises(InvalidKey, match="empty"):
        VerifyKey("cs1.")


@pytest.mark.parametrize("text", ["not base64!", "cs1.not base64!", "cs1.@@@@", "cs2.AAAA", "ab=cd"])
def test_public_key_not_base64(text: str) -> None:
    with pytest.raises(InvalidKey, match="base64"):
        VerifyKey(text)


@pytest.mark.parametrize("text", ["", "  "])
def test_public_key_empty(text: str) -> None:
    with pytest.raises(InvalidKey, match="empty"):
        VerifyKey(text)


@pytest.mark.parametrize("value", [None, 42, 4.2, ["a"]])
def test_public_key_wrong_type(value: object) -> None:
    with pytest.raises(InvalidKey) as info:
        VerifyKey(value)  # type: ignore[arg-type]
    assert type(value).__name__ in str(info.value)
    with pytest.raises(InvalidKey):
        parse_public_key(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        unseal(b"\x00" * 80, value)  # type: ignore[arg-type]


def test_public_key_not_a_curve_point() -> None:
    # The example key printed in the UFTP transport appendix is illustrative only: its
    # signing half is not a point on the Ed25519 curve, so nothing could verify with it.
    spec_example = (
        "cs1.V4lZrkYHq8FzneXxUML+QEMXMul3tBm+gPGoVDIZBA92VoWTu8/kRu2Zx72XOm1i/qwwoSgXjqSAqSa43myCaQ=="
    )
    with pytest.raises(InvalidKey, match="not a valid Ed25519 public key"):
        VerifyKey(spec_example)


def test_bad_public_key_fails_before_verification() -> None:
    # the key problem is reported as InvalidKey, not hidden behind InvalidSignature
    with pytest.raises(InvalidKey):
        unseal(b"\x00" * 100, b64(os.urandom(31)))
