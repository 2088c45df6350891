"""pyuftp's one public face: what ``import pyuftp`` offers, pinned; and it stays light."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyuftp
from pyuftp.types.payloads import PAYLOADS

ROOT = Path(__file__).resolve().parents[2]

#: Changing this list changes pyuftp's public API: say so in the CHANGELOG.
FACE = [
    "create_message", "parse_message", "check_payload", "MessageType",
    "DEFAULT_VERSION", "MESSAGE_TYPES", "VERSIONS", "PAYLOADS",
    "generate_keypair", "SigningKey", "VerifyKey", "load_keys", "KeyPair",
    "Directory", "ShapeshifterService", "ShapeshifterAgrService", "ShapeshifterCroService",
    "ShapeshifterDsoService", "Limits", "Rejected", "open_store",
    "ShapeshifterClient", "ShapeshifterAgrCroClient", "ShapeshifterAgrDsoClient",
    "ShapeshifterCroAgrClient", "ShapeshifterCroDsoClient", "ShapeshifterDsoAgrClient",
    "ShapeshifterDsoCroClient",
    "PyUFTPError", "MessageError", "UnknownMessageType", "UnsupportedVersion", "MalformedXML",
    "ValidationError", "InvalidKey", "InvalidSignature", "RuleViolation", "StoreError",
    "TemporaryDeliveryError", "FinalDeliveryError", "AddressingError",
    "Disposition", "ProfileType", "RedispatchBy", "Result", "Role", "SettlementDisposition",
    "Unit",
]


def test_the_face_is_pinned():
    payload_types = sorted(cls.__name__ for cls in PAYLOADS.values())
    assert len(payload_types) == len(PAYLOADS) == 26
    assert sorted(pyuftp.__all__) == sorted(FACE + payload_types)
    assert len(set(pyuftp.__all__)) == len(pyuftp.__all__)


def test_every_name_of_the_face_is_there():
    for name in pyuftp.__all__:
        assert getattr(pyuftp, name) is not None, name
    assert set(pyuftp.__all__) <= set(dir(pyuftp))
    assert pyuftp.ShapeshifterAgrDsoClient.recipient_role == "DSO"


def test_an_unknown_name_says_so():
    try:
        pyuftp.ShapeshifterDsoServices  # noqa: B018
    except AttributeError as exc:
        assert "ShapeshifterDsoServices" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_importing_pyuftp_loads_no_transport():
    code = ("import sys, pyuftp; print(sorted(m for m in ('aiohttp', 'nacl', 'sqlite3') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_readme_and_docs_import_public_names_from_pyuftp():
    pattern = re.compile(r"^\s*from pyuftp\.[\w.]+ import ([\w, ]+)$", re.M)
    texts = [ROOT / "README.md", *ROOT.glob("docs/*.rst"), *ROOT.glob("examples/*.py")]
    offenders = []
    for path in texts:
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            names = [n.strip() for n in match.group(1).split(",")]
            offenders += [f"{path.name}: {n}" for n in names if n in pyuftp.__all__]
    assert not offenders, offenders


def test_the_readme_layout_is_the_layer_map():
    from pyuftp._layers import LAYERS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Layout"):]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split(" | ")[0].strip("| ") for row in rows[1:]] == [
        layer.name for layer in reversed(LAYERS)]
    for layer in LAYERS:
        for part in layer.parts:
            assert f"`{part}/`" in section or f"`{part}.py`" in section, part
