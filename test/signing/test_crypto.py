"""Tests for pyuftp.signing.crypto: CS1 keys, sealing and unsealing with real Ed25519 keys."""
from __future__ import annotations

import base64
import logging
import os
import random
from typing import Callable

import nacl.bindings
import nacl.signing
import pytest

from pyuftp.signing.crypto import (
    CS1_PREFIX,
    PUBLIC_KEY_BYTES,
    SECRET_KEY_BYTES,
    SEED_BYTES,
    SIGNATURE_BYTES,
    SigningKey,
    VerifyKey,
    format_cs1,
    generate_keypair,
    verify_key,
)
from pyuftp.exceptions import InvalidKey, InvalidSignature, PyUFTPError

MESSAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<FlexRequest Version="3.0.0" SenderDomain="dso.example.com" '
    b'RecipientDomain="agr.example.com" MessageID="0b8e1a8a-7c1d-4c1b-9a4e-0d1e2f3a4b5c"/>'
)
SEED_HINT = "32 bytes is the length of a public key (or a bare seed)"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@pytest.fixture(scope="module")
def keypair() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture(scope="module")
def other_keypair() -> tuple[str, str]:
    return generate_keypair()


# --------------------------------------------------------------------------- generation, properties


def test_constants() -> None:
    assert (SIGNATURE_BYTES, PUBLIC_KEY_BYTES, SECRET_KEY_BYTES, SEED_BYTES) == (64, 32, 64, 32)
    assert CS1_PREFIX == "cs1."


def test_generate_keypair_layout() -> None:
    private, public = generate_keypair()
    assert len(base64.b64decode(private, validate=True)) == 64
    assert len(base64.b64decode(public, validate=True)) == 32
    assert base64.b64decode(private)[32:] == base64.b64decode(public)  # seed + public key
    assert generate_keypair() != (private, public)


def test_signing_key_properties(keypair: tuple[str, str]) -> None:
    private, public = keypair
    key = SigningKey(private)
    assert key.public_key == public
    assert key.public_key_bytes == base64.b64decode(public)
    assert key.public_key_cs1 == "cs1." + public
    assert key.private_key == private
    assert key.verify_key == VerifyKey(public)
    assert SigningKey(key) == key and hash(SigningKey(key)) == hash(key)
    assert SigningKey(base64.b64decode(private)) == key
    assert SigningKey(f"  {private}\n") == key
    assert key != SigningKey.generate()
    assert public in repr(key)
    assert private not in repr(key) and private[:8] not in repr(key)


def test_signing_key_generate_and_from_seed(keypair: tuple[str, str]) -> None:
    key = SigningKey.generate()
    assert key.verify_key.unseal(key.seal(MESSAGE)) == MESSAGE
    private, public = keypair
    seed = base64.b64decode(private)[:32]
    for form in (seed, bytearray(seed), memoryview(seed)):
        assert SigningKey.from_seed(form).private_key == private
    assert SigningKey.from_seed(seed).public_key == public


@pytest.mark.parametrize("bad", [b"\x00" * 31, b"\x00" * 64, "A" * 44, None])
def test_from_seed_refuses_non_seed(bad: object) -> None:
    with pytest.raises(InvalidKey, match="seed must be 32 raw bytes"):
        SigningKey.from_seed(bad)  # type: ignore[arg-type]


def test_verify_key_forms_are_equal(keypair: tuple[str, str]) -> None:
    private, public = keypair
    raw = base64.b64decode(public)
    signing = SigningKey(private)
    forms = [public, "cs1." + public, f"\t cs1.{public} \n", raw, bytearray(raw), memoryview(raw),
             VerifyKey(public), signing]
    keys = {VerifyKey(form) for form in forms}  # type: ignore[arg-type]
    assert len(keys) == 1
    assert keys.pop().public_key == public
    assert VerifyKey(signing).encryption_key is None
    assert VerifyKey(public) != signing  # a public key never equals a private key object
    assert repr(VerifyKey(public)) == f"VerifyKey(public_key={public!r})"


def test_verify_key_function_caches_strings(keypair: tuple[str, str]) -> None:
    private, public = keypair
    assert verify_key(public) is verify_key(public)
    assert verify_key("cs1." + public) == verify_key(public)
    key = VerifyKey(public)
    assert verify_key(key) is key
    assert verify_key(SigningKey(private)) == key
    assert verify_key(base64.b64decode(public)) == key
    for _ in range(2):  # failures are not cached: each call raises
        with pytest.raises(InvalidKey, match="private key"):
            verify_key(private)


# --------------------------------------------------------------------------- seal / unseal


def test_round_trip(keypair: tuple[str, str]) -> None:
    private, public = keypair
    signer, verifier = SigningKey(private), VerifyKey(public)
    for body in (b"", b"x", MESSAGE, os.urandom(100_000)):
        sealed = signer.seal(body)
        assert len(sealed) == SIGNATURE_BYTES + len(body) and sealed[64:] == body
        assert verifier.unseal(sealed) == body
    sealed = signer.seal(bytearray(MESSAGE))
    assert verifier.unseal(memoryview(sealed)) == verifier.unseal(bytearray(sealed)) == MESSAGE
    assert VerifyKey("cs1." + public).unseal(sealed) == MESSAGE


@pytest.mark.parametrize("index", [0, 31, 32, 63, 64 + 10, -1])
def test_tampered_sealed_message_rejected(keypair: tuple[str, str], index: int) -> None:
    private, public = keypair
    sealed = bytearray(SigningKey(private).seal(MESSAGE))
    sealed[index] ^= 0x01
    with pytest.raises(InvalidSignature):
        VerifyKey(public).unseal(bytes(sealed))


def test_appended_truncated_and_garbage_rejected(keypair: tuple[str, str]) -> None:
    private, public = keypair
    sealed, key = SigningKey(private).seal(MESSAGE), VerifyKey(public)
    for bad in (sealed + b" ", sealed[:-1], os.urandom(84)):
        with pytest.raises(InvalidSignature):
            key.unseal(bad)


def test_key_of_another_party_rejected_without_quoting_it(
    keypair: tuple[str, str], other_keypair: tuple[str, str]
) -> None:
    _, other_public = other_keypair
    with pytest.raises(InvalidSignature, match="signed with another key") as info:
        VerifyKey(other_public).unseal(SigningKey(keypair[0]).seal(MESSAGE))
    assert other_public[:8] not in str(info.value)


@pytest.mark.parametrize("length", [0, 1, 32, 63])
def test_too_short_sealed_message(keypair: tuple[str, str], length: int) -> None:
    with pytest.raises(InvalidSignature, match="shorter than a signature") as info:
        VerifyKey(keypair[1]).unseal(b"\x00" * length)
    assert isinstance(info.value, PyUFTPError) and not isinstance(info.value, ValueError)


def test_non_bytes_data_is_type_error(keypair: tuple[str, str]) -> None:
    private, public = keypair
    with pytest.raises(TypeError, match="encode"):
        SigningKey(private).seal("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        VerifyKey(public).unseal("text")  # type: ignore[arg-type]


def test_interop_with_raw_libsodium_and_pynacl() -> None:
    pk, sk = nacl.bindings.crypto_sign_keypair()
    sealed = nacl.bindings.crypto_sign(MESSAGE, sk)
    assert VerifyKey(b64(pk)).unseal(sealed) == VerifyKey(pk).unseal(sealed) == MESSAGE
    assert SigningKey(b64(sk)).seal(MESSAGE) == SigningKey(sk).seal(MESSAGE) == sealed  # deterministic
    assert nacl.bindings.crypto_sign_open(SigningKey(sk).seal(MESSAGE), pk) == MESSAGE
    nacl_key = nacl.signing.SigningKey.generate()
    ours = SigningKey.from_seed(bytes(nacl_key))  # PyNaCl stores the 32-byte seed
    assert ours.public_key_bytes == bytes(nacl_key.verify_key)
    assert nacl_key.verify_key.verify(ours.seal(MESSAGE)) == MESSAGE


# --------------------------------------------------------------------------- cs1 strings


def test_cs1_with_64_bytes_keeps_encryption_key(keypair: tuple[str, str]) -> None:
    private, public = keypair
    raw = base64.b64decode(public)
    _, box_public = nacl.bindings.crypto_box_keypair()
    joined = "cs1." + b64(raw + box_public)
    key = VerifyKey(joined)
    assert key.public_key == public and key.public_key_bytes == raw
    assert key.encryption_key == box_public
    assert VerifyKey(key).encryption_key == box_public
    assert VerifyKey("cs1." + public).encryption_key is None
    assert key.unseal(SigningKey(private).seal(MESSAGE)) == MESSAGE
    assert format_cs1(raw, box_public) == joined


def test_format_cs1_forms(keypair: tuple[str, str]) -> None:
    private, public = keypair
    expected = "cs1." + public
    for form in (public, base64.b64decode(public), expected, VerifyKey(public), SigningKey(private)):
        assert format_cs1(form) == expected
    assert VerifyKey(format_cs1(public)) == VerifyKey(public)


@pytest.mark.parametrize("bad", [b"\x00" * 31, b"\x00" * 33, "not bytes", 5])
def test_format_cs1_bad_encryption_key(keypair: tuple[str, str], bad: object) -> None:
    with pytest.raises(InvalidKey, match="encryption key must be 32 raw bytes"):
        format_cs1(keypair[1], bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [0, 1, 31, 33, 48, 63, 65, 96])
def test_cs1_wrong_length(length: int) -> None:
    with pytest.raises(InvalidKey, match=f"32 bytes or 64 bytes .*got {length} bytes"):
        VerifyKey("cs1." + b64(os.urandom(length)))


def test_cs1_prefix_is_lower_case_only(keypair: tuple[str, str]) -> None:
    for prefix in ("CS1.", "Cs1.", "cS1."):
        with pytest.raises(InvalidKey, match="lower case"):
            VerifyKey(prefix + keypair[1])


@pytest.mark.parametrize("mangle", [
    lambda k: k.rstrip("="),               # missing padding
    lambda k: k + "==",                    # excess padding
    lambda k: k[:20] + " " + k[20:],       # inner whitespace
    lambda k: k[:20] + "\n" + k[20:],      # inner line break
    lambda k: k.replace("+", "-").replace("/", "_") if "+" in k or "/" in k else k[:-2] + "_=",
    lambda k: k[:-2] + chr(ord(k[-2]) + 1) + "=",  # non-zero spare bits (non-canonical)
    lambda k: k[:10] + "!" + k[11:],
])
@pytest.mark.parametrize("prefix", ["", "cs1."])
def test_base64_is_strict(
    keypair: tuple[str, str], mangle: Callable[[str], str], prefix: str
) -> None:
    _, public = keypair
    with pytest.raises(InvalidKey, match="not strict base64"):
        VerifyKey(prefix + mangle(public))


# --------------------------------------------------------------------------- misplaced keys


def test_private_key_given_as_public_key_is_refused_200_keys() -> None:
    for _ in range(200):
        private, public = generate_keypair()
        raw = base64.b64decode(private)
        for wrong in ("cs1." + private, private, raw, bytearray(raw), " cs1." + private + "\n"):
            with pytest.raises(InvalidKey, match="this looks like a private key; publish/pass the "
                                                 "public key"):
                VerifyKey(wrong)
        with pytest.raises(InvalidKey, match="looks like a private key"):
            format_cs1(private)


def test_spec_example_key_is_a_private_key() -> None:
    # The example cs1 key printed in the UFTP transport appendix is 64 bytes: a seed followed
    # by that seed's public key, i.e. a libsodium private key, not a publishable key.
    spec_example = ("cs1.V4lZrkYHq8FzneXxUML+QEMXMul3tBm+gPGoVDIZBA92VoWTu8/kRu2Zx72XOm1i/qwwoSgX"
                    "jqSAqSa43myCaQ==")
    with pytest.raises(InvalidKey, match="looks like a private key"):
        VerifyKey(spec_example)


def test_64_bytes_without_cs1_prefix(keypair: tuple[str, str]) -> None:
    raw = base64.b64decode(keypair[1]) + nacl.bindings.crypto_box_keypair()[0]
    with pytest.raises(InvalidKey, match="base64 of 32 bytes .*as a 'cs1.' string.*got 64 bytes"):
        VerifyKey(b64(raw))
    with pytest.raises(InvalidKey, match="raw 32 bytes .*as a 'cs1.' string.*got 64 bytes"):
        VerifyKey(raw)


def test_32_bytes_refused_as_private_key(keypair: tuple[str, str]) -> None:
    private, public = keypair
    seed = base64.b64decode(private)[:32]
    for wrong in (public, b64(seed), base64.b64decode(public), seed, bytearray(seed)):
        with pytest.raises(InvalidKey) as info:
            SigningKey(wrong)
        assert SEED_HINT in str(info.value)
        assert "generate_keypair()" in str(info.value)
        assert "SigningKey.from_seed(seed)" in str(info.value)


def test_cs1_string_refused_as_private_key(keypair: tuple[str, str]) -> None:
    private, public = keypair
    for wrong in ("cs1." + public, "cs1." + private, "CS1." + public, "cs1."):
        with pytest.raises(InvalidKey, match="this is a published public key"):
            SigningKey(wrong)


def test_private_key_with_mismatched_public_half(
    keypair: tuple[str, str], other_keypair: tuple[str, str]
) -> None:
    spliced = base64.b64decode(keypair[0])[:32] + base64.b64decode(other_keypair[1])
    for form in (b64(spliced), spliced):
        with pytest.raises(InvalidKey, match="corrupt"):
            SigningKey(form)


@pytest.mark.parametrize("length", [0, 1, 16, 31, 33, 63, 65, 128])
def test_private_key_wrong_length(length: int) -> None:
    with pytest.raises(InvalidKey, match=f"private key must be base64 of 64 bytes, got {length} bytes"):
        SigningKey(b64(os.urandom(length)))
    with pytest.raises(InvalidKey, match=f"private key must be raw 64 bytes, got {length} bytes"):
        SigningKey(os.urandom(length))


@pytest.mark.parametrize("length", [0, 1, 16, 31, 33, 63, 65])
def test_public_key_wrong_length(length: int) -> None:
    with pytest.raises(InvalidKey, match=f"public key must be base64 of 32 bytes.*got {length} bytes"):
        VerifyKey(b64(os.urandom(length)))
    with pytest.raises(InvalidKey, match=f"public key must be raw 32 bytes, got {length} bytes"):
        VerifyKey(os.urandom(length))


def test_key_text_passed_as_bytes_is_refused(keypair: tuple[str, str]) -> None:
    private, public = keypair
    with pytest.raises(InvalidKey, match="raw 32 bytes, got 44 bytes"):
        VerifyKey(public.encode("ascii"))
    with pytest.raises(InvalidKey, match="raw 64 bytes, got 88 bytes"):
        SigningKey(private.encode("ascii"))


# --------------------------------------------------------------------------- types, points, leaks


@pytest.mark.parametrize("value", [None, 42, 4.2, ["a"], {"k": "v"}, object()])
def test_wrong_type_names_the_expected_type(value: object) -> None:
    with pytest.raises(InvalidKey, match=f"must be a base64 str or 64 raw bytes, got {type(value).__name__}"):
        SigningKey(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidKey, match=f"must be a str or 32 raw bytes, got {type(value).__name__}"):
        VerifyKey(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        format_cs1(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["é" * 44, "cs1.é", "AAAA\u00a0", "\u2028", "ключ"])
def test_non_ascii_text_is_invalid_key(text: str) -> None:
    for parse in (SigningKey, VerifyKey, verify_key):
        with pytest.raises(InvalidKey, match="non-ASCII"):
            parse(text)  # type: ignore[operator]


def test_public_key_not_a_curve_point() -> None:
    if not nacl.bindings.has_crypto_core_ed25519:
        pytest.skip("libsodium built without ed25519 core functions")
    # the identity point (small order), all-zero bytes and a non-canonical encoding
    for bad in (b"\x01" + b"\x00" * 31, b"\x00" * 32, b64(b"\xff" * 32), "cs1." + b64(b"\xff" * 64)):
        with pytest.raises(InvalidKey, match="not a valid Ed25519 point"):
            VerifyKey(bad)


def test_nothing_but_invalid_key_escapes_for_random_input() -> None:
    rng = random.Random(1234)
    alphabet = "ABCxyz019+/=-_. \n\té\x00"
    for _ in range(2000):
        raw = rng.randbytes(rng.choice([0, 1, 31, 32, 33, 44, 48, 63, 64, 65, 88]))
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 100)))
        for value in (raw, text, "cs1." + text, "cs1." + b64(raw), b64(raw)):
            for parse in (SigningKey, VerifyKey, verify_key, format_cs1):
                try:
                    parse(value)  # type: ignore[operator]
                except InvalidKey:
                    pass


def _leaks(secret_texts: list[str], output: str) -> list[str]:
    """The 8-character pieces of ``secret_texts`` that appear in ``output``."""
    return [t[i:i + 8] for t in secret_texts for i in range(len(t) - 7) if t[i:i + 8] in output]


def test_no_key_material_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(50):
        private, public = generate_keypair()
        raw_private, raw_public = base64.b64decode(private), base64.b64decode(public)
        corrupt = b64(raw_private[:32] + os.urandom(32))
        wrong_places: list[tuple[Callable[[object], object], object]] = [
            (VerifyKey, private), (VerifyKey, "cs1." + private), (VerifyKey, raw_private),
            (verify_key, private), (format_cs1, private), (VerifyKey, private.encode()),
            (VerifyKey, public[:-4]), (VerifyKey, public + "=="), (VerifyKey, "CS1." + public),
            (VerifyKey, public.encode()), (VerifyKey, b64(raw_public + raw_public[:16])),
            (SigningKey, public), (SigningKey, "cs1." + public), (SigningKey, raw_public),
            (SigningKey, private[:-4]), (SigningKey, private.rstrip("=")), (SigningKey, corrupt),
            (SigningKey, private + "AAAA"), (SigningKey, private.encode()),
            (SigningKey, private[:40] + "é" + private[41:]), (SigningKey.from_seed, private),
            (SigningKey.from_seed, raw_private),
        ]
        for parse, value in wrong_places:
            with pytest.raises(InvalidKey) as info:
                parse(value)
            secrets = [private, public, corrupt, b64(raw_private), b64(raw_public)]
            if isinstance(value, str):
                secrets.append(value)
            output = str(info.value) + repr(info.value.args) + caplog.text
            assert not _leaks(secrets, output), (parse, str(info.value))
        with pytest.raises(InvalidSignature) as sig_info:
            VerifyKey(public).unseal(SigningKey.generate().seal(MESSAGE))
        assert not _leaks([public], str(sig_info.value) + caplog.text)
    assert "signature check failed" in caplog.text  # logging works, it just never shows keys
