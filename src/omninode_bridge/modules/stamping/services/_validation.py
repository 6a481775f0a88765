"""``POST /validate``: is this content, with this stamp, what the service signed?"""

from __future__ import annotations

from omninode_bridge.modules.stamping.schemas import ValidationCheck, ValidationResponse
from omninode_bridge.modules.stamping.services._stamp_format import FIELDS, METADATA_VERSION, Keyring, find_block

__all__ = ["check_stamp", "parse_detached"]


def check_stamp(
    keyring: Keyring,
    stamp_fields: dict[str, str] | None,
    *,
    file_hash: str,
    size_bytes: int,
    expected_namespace: str | None,
    format_problem: str | None = None,
) -> ValidationResponse:
    """Run the format, hash, signature and namespace checks of one stamp against content's digest.

    Args:
        keyring: Keys by id, for the signature.
        stamp_fields: The block's fields, or None if no block was found.
        file_hash: BLAKE3 of the content without its block.
        size_bytes: Size of that content.
        expected_namespace: The namespace the caller expects, if any.
        format_problem: Why no block could be read, when ``stamp_fields`` is None.
    """
    checks: list[ValidationCheck] = []
    if stamp_fields is None:
        checks.append(ValidationCheck("format", False, format_problem or "no ONEX stamp block found"))
        return ValidationResponse(valid=False, checks=checks, file_hash=file_hash)
    missing = [name for name in FIELDS if name not in stamp_fields]
    if missing:
        problem = f"missing fields: {', '.join(missing)}"
    elif stamp_fields["metadata_version"] != METADATA_VERSION:
        problem = f"unsupported metadata_version {stamp_fields['metadata_version']!r}"
    elif stamp_fields["hash_algorithm"] != "blake3":
        problem = f"unsupported hash_algorithm {stamp_fields['hash_algorithm']!r}"
    else:
        problem = None
    checks.append(ValidationCheck("format", problem is None, problem))
    if problem is not None:
        return ValidationResponse(valid=False, checks=checks, file_hash=file_hash)

    hash_ok = stamp_fields["file_hash"] == file_hash and stamp_fields["size_bytes"] == str(size_bytes)
    checks.append(ValidationCheck(
        "hash", hash_ok,
        None if hash_ok else f"content hashes to {file_hash} ({size_bytes} bytes); the stamp says "
        f"{stamp_fields['file_hash']} ({stamp_fields['size_bytes']} bytes)",
    ))  # fmt: skip
    signature_ok, reason = keyring.verify(stamp_fields)
    checks.append(ValidationCheck("signature", signature_ok, reason))
    namespace_ok = expected_namespace is None or expected_namespace == stamp_fields["namespace"]
    checks.append(ValidationCheck(
        "namespace", namespace_ok,
        None if namespace_ok else f"stamp is for namespace {stamp_fields['namespace']!r}, not {expected_namespace!r}",
    ))  # fmt: skip
    return ValidationResponse(
        valid=all(check.passed for check in checks), checks=checks, stamp_id=stamp_fields["stamp_id"],
        file_hash=file_hash, namespace=stamp_fields["namespace"],
    )  # fmt: skip


def parse_detached(stamp: str) -> dict[str, str] | None:
    """Fields of a detached stamp block given on its own."""
    found = find_block(stamp.encode())
    return found.fields if found is not None else None
