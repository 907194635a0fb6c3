"""Secrets are compared in constant time: no `==` or `!=` on a credential, token, code, proof,
verifier, CSRF token, password or digest of one anywhere in the packages. They use
`hmac.compare_digest`, or look a secret up by its digest (in the database or a dict keyed by
digests), which tells a timing observer nothing about the secret.

A static check over the source: an operand of `==`/`!=` named like a secret is refused unless
it is listed below as no secret (for example a digest of ciphertext, checked for integrity)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "transfer_codes",
    "relay",
    "site_agent",
    "sending_site",
    "receiving_site",
    "trauma_relay",
)
SECRET_NAME = re.compile(
    r"token|credential|secret|verifier|proof|digest|csrf|password|passphrase|sha256|\bkey\b|"
    r"kek|redemption_id|cookie",
    re.IGNORECASE,
)
# (file, the comparison's source) pairs that compare no secret.
NOT_SECRET = {
    # The SHA-256 of the sealed (encrypted) object, sent by the uploader: an integrity check of
    # ciphertext the relay stores anyway.
    ("relay/api/uploads.py", "digest != completion[1]"),
    ("relay/api/uploads.py", "await request.app[OBJECTS].sha256(transfer_id, index) != sha256"),
    ("relay/desk/uploads.py", "(current.size, current.sha256) != (size, sha256)"),
    ("relay/api/batches.py", "hasher.hexdigest() != sha256"),
    # `relay migrate` checks each copied sealed object against the source's SHA-256.
    ("relay/migrate.py", "await target.sha256(transfer_id, index) != source_sha"),
    # The receiving site checks a decrypted object against the manifest's SHA-256 of it.
    ("receiving_site/staging.py", "digest.hexdigest() != entry.sha256"),
    ("receiving_site/batch_staging.py", "hashlib.sha256(plain).hexdigest() != self.entry.sha256"),
    ("transfer_codes/manifest.py", "hashlib.sha256(plaintext).hexdigest() != entry.sha256"),
    # Whether a phone key is spelled canonically: the caller's own text against its own bytes.
    ("transfer_codes/phone.py", "encode_key(key) != text"),
    # A patient's identifiers as the import worklist keys them: PHI, but no secret.
    ("receiving_site/console/import_worklist.py", "(c.patient_id, c.issuer_of_patient_id) == key"),
}


def _names(node: ast.AST) -> str:
    """The identifiers an operand is spelled with, leaving out what is inside `len()` (a
    length is no secret) and constants (`VERIFIER_SIZE`)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len":
        return ""
    if isinstance(node, ast.Name):
        return "" if node.id.isupper() else node.id
    own = node.attr if isinstance(node, ast.Attribute) else ""
    return " ".join([own, *(_names(child) for child in ast.iter_child_nodes(node))]).strip()


def comparisons_in(source: str, name: str) -> list[tuple[str, str]]:
    """(name, comparison) for each `==`/`!=` in `source` with an operand named like a secret
    (comparisons with None are no secret)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            continue
        operands = [node.left, *node.comparators]
        if any(isinstance(o, ast.Constant) and o.value is None for o in operands):
            continue
        if any(SECRET_NAME.search(_names(o)) for o in operands):
            segment = ast.get_source_segment(source, node) or ""
            found.append((name, " ".join(segment.split())))
    return found


def comparisons_of_secrets() -> list[tuple[str, str]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            found += comparisons_in(path.read_text(encoding="utf-8"), relative)
    return found


def test_no_secret_is_compared_with_equality() -> None:
    found = comparisons_of_secrets()
    assert [f for f in found if f not in NOT_SECRET] == []
    # A listed exception that went away leaves the list.
    assert set(found) >= NOT_SECRET


def test_the_check_is_not_blind() -> None:
    source = (
        "if presented_token == session.csrf_token: pass\n"
        "if digest(proof) != stored: pass\n"
        "if len(token) != TOKEN_SIZE or token is None or self.key == None: pass\n"
    )
    assert comparisons_in(source, "x.py") == [
        ("x.py", "presented_token == session.csrf_token"),
        ("x.py", "digest(proof) != stored"),
    ]
