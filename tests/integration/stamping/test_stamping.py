"""Stamping endpoints against the real stack: hashing, stamps, validation, namespaces, content types."""

from __future__ import annotations

import json
import uuid

import pytest
from blake3 import blake3
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support import DATA_DIR
from tests.support.stamping_samples import SAMPLES

Client = AsyncTestClient[Litestar]
RAW = {"content-type": "application/octet-stream"}
VECTORS = json.loads((DATA_DIR / "blake3_test_vectors.json").read_text())["cases"]


def _ns(prefix: str = "ns") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def _stamp(client: Client, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = await client.post("/stamp", json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.mark.parametrize("case", VECTORS, ids=lambda case: str(case["input_len"]))
async def test_official_blake3_vectors_through_hash(client: Client, admin_headers: dict[str, str], case: dict) -> None:
    data = bytes(i % 251 for i in range(case["input_len"]))
    response = await client.post("/hash", content=data, headers={**admin_headers, **RAW})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["file_hash"] == case["hash"][:64]
    assert body["size_bytes"] == case["input_len"]
    assert body["algorithm"] == "blake3"
    assert body["processing_time_ms"] >= 0


async def test_hash_json_and_streamed_bodies(client: Client, admin_headers: dict[str, str]) -> None:
    by_json = (await client.post("/hash", json={"content": "héllo"}, headers=admin_headers)).json()
    assert by_json["file_hash"] == blake3("héllo".encode()).hexdigest()
    assert by_json["size_bytes"] == len("héllo".encode())
    # Above the inline threshold: hashed block by block in a worker thread as the body streams in.
    big = bytes(range(256)) * 12_289  # about 3 MiB, not a multiple of the block size
    streamed = (await client.post("/hash", content=big, headers={**admin_headers, **RAW})).json()
    assert streamed == {**streamed, "file_hash": blake3(big).hexdigest(), "size_bytes": len(big)}


async def test_hash_rejects_bad_json_with_the_field(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.post("/hash", json={"content": 5}, headers=admin_headers)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == "content"


async def test_stamp_fetch_validate_tamper_and_restamp(client: Client, admin_headers: dict[str, str]) -> None:
    namespace = _ns()
    source = "#!/usr/bin/env python\nprint('hello')\n"
    created = await client.post(
        "/stamp", json={"content": source, "namespace": namespace, "file_path": "tools/hello.py",
                        "metadata": {"owner": "qa"}}, headers=admin_headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    stamp = created.json()
    assert stamp["metadata_version"] == "0.1"
    assert stamp["workflow_state"] == "COMPLETED"
    assert stamp["content_type"] == "text/x-python"
    assert stamp["file_hash"] == blake3(source.encode()).hexdigest()
    assert stamp["size_bytes"] == len(source.encode())
    stamped = stamp["stamped_content"]
    # The shebang stays first; the block is a Python comment.
    assert stamped.startswith("#!/usr/bin/env python\n# ---BEGIN ONEX STAMP---\n")
    assert stamped.endswith("# ---END ONEX STAMP---\nprint('hello')\n")

    fetched = await client.get(f"/stamp/{stamp['file_hash']}", params={"namespace": namespace}, headers=admin_headers)
    assert fetched.status_code == 200
    assert fetched.json()["stamp_id"] == stamp["stamp_id"]
    assert fetched.json()["metadata"] == {"owner": "qa"}

    valid = (await client.post("/validate", json={"content": stamped, "namespace": namespace},
                               headers=admin_headers)).json()  # fmt: skip
    assert valid["valid"] is True
    assert [c["name"] for c in valid["checks"]] == ["format", "hash", "signature", "namespace"]
    assert all(c["passed"] for c in valid["checks"])

    tampered_content = stamped.replace("print('hello')", "print('hellO')")
    result = (await client.post("/validate", json={"content": tampered_content}, headers=admin_headers)).json()
    assert result["valid"] is False
    assert {c["name"]: c["passed"] for c in result["checks"]}["hash"] is False

    tampered_stamp = stamped.replace(f"namespace: {namespace}", f"namespace: {namespace[:-1]}x")
    result = (await client.post("/validate", json={"content": tampered_stamp}, headers=admin_headers)).json()
    assert result["valid"] is False
    assert {c["name"]: c["passed"] for c in result["checks"]}["signature"] is False

    wrong_namespace = (await client.post("/validate", json={"content": stamped, "namespace": "elsewhere"},
                                         headers=admin_headers)).json()  # fmt: skip
    assert wrong_namespace["valid"] is False

    again = await client.post(
        "/stamp",
        json={"content": stamped, "namespace": namespace, "file_path": "tools/hello.py"},
        headers=admin_headers,
    )
    assert again.status_code == 200
    assert again.json()["stamp_id"] == stamp["stamp_id"]
    assert again.json()["created"] is False
    assert again.json()["stamped_content"] == stamped  # replaced, not nested
    assert again.json()["stamped_content"].count("BEGIN ONEX STAMP") == 1


async def test_one_byte_of_the_stamp_changed_is_invalid(client: Client, admin_headers: dict[str, str]) -> None:
    stamp = await _stamp(client, admin_headers, content="some notes\n", namespace=_ns())
    stamped: str = stamp["stamped_content"]
    signature_at = stamped.index("signature: ") + len("signature: ")
    flipped = "0" if stamped[signature_at] != "0" else "1"
    tampered = stamped[:signature_at] + flipped + stamped[signature_at + 1 :]
    result = (await client.post("/validate", json={"content": tampered}, headers=admin_headers)).json()
    assert result["valid"] is False
    # A stamp with no block at all fails the format check.
    missing = (await client.post("/validate", json={"content": "some notes\n"}, headers=admin_headers)).json()
    assert missing["valid"] is False
    assert missing["checks"][0] == {"name": "format", "passed": False, "detail": "no ONEX stamp block found"}


async def test_binary_upload_gets_a_detached_stamp(client: Client, admin_headers: dict[str, str]) -> None:
    namespace = _ns()
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    response = await client.post("/stamp", content=png, params={"namespace": namespace, "file_path": "img/logo.png"},
                                 headers={**admin_headers, **RAW})  # fmt: skip
    assert response.status_code == 201, response.text
    stamp = response.json()
    assert stamp["content_type"] == "image/png"
    assert stamp["stamped_content"] is None
    assert stamp["stamp"].startswith("---BEGIN ONEX STAMP---\n")
    assert stamp["file_hash"] == blake3(png).hexdigest()

    ok = await client.post("/validate", content=png, params={"stamp_id": stamp["stamp_id"]},
                           headers={**admin_headers, **RAW})  # fmt: skip
    assert ok.json()["valid"] is True, ok.text
    bad = await client.post("/validate", content=png[:-1] + b"\x01", params={"stamp_id": stamp["stamp_id"]},
                            headers={**admin_headers, **RAW})  # fmt: skip
    assert bad.json()["valid"] is False
    detached = await client.post("/validate", json={"content": "not the png", "stamp": stamp["stamp"]},
                                 headers=admin_headers)  # fmt: skip
    assert detached.json()["valid"] is False


async def test_namespace_restricted_key(client: Client, admin_headers: dict[str, str]) -> None:
    allowed, other = _ns("team-a"), _ns("team-b")
    created = await client.post("/admin/api-keys", json={"name": "team-a", "scopes": ["stamping"],
                                                        "namespaces": [allowed]}, headers=admin_headers)  # fmt: skip
    assert created.status_code == 201, created.text
    team_key = {"X-API-Key": created.json()["key"]}
    other_stamp = await _stamp(client, admin_headers, content="other team's file\n", namespace=other)

    denied = await client.post("/stamp", json={"content": "x", "namespace": other}, headers=team_key)
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    raw_denied = await client.post("/stamp", content=b"x", params={"namespace": other}, headers={**team_key, **RAW})
    assert raw_denied.status_code == 403
    fetch = await client.get(f"/stamp/{other_stamp['file_hash']}", params={"namespace": other}, headers=team_key)
    assert fetch.status_code == 403
    unfiltered = await client.get(f"/stamp/{other_stamp['file_hash']}", headers=team_key)
    assert unfiltered.status_code == 404  # the other namespace's stamp is invisible, not leaked
    assert (await client.get(f"/namespaces/{other}/stats", headers=team_key)).status_code == 403
    listed = await client.get("/stamps", headers=team_key)
    assert all(item["namespace"] == allowed for item in listed.json()["items"])
    validate_other = await client.post("/validate", json={"content": other_stamp["stamped_content"]}, headers=team_key)
    assert validate_other.status_code == 403

    mine = await client.post("/stamp", json={"content": "mine\n", "namespace": allowed}, headers=team_key)
    assert mine.status_code == 201
    hooks_only = await client.post("/admin/api-keys", json={"name": "no-stamping", "scopes": ["codegen"]},
                                   headers=admin_headers)  # fmt: skip
    no_scope = await client.post("/stamp", json={"content": "x", "namespace": allowed},
                                 headers={"X-API-Key": hooks_only.json()["key"]})  # fmt: skip
    assert no_scope.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "x", "namespace": "bad namespace!"}, "namespace"),
        ({"content": "x", "namespace": "n" * 256}, "namespace"),
        ({"content": "x", "namespace": "ok", "file_path": "../etc/passwd"}, "file_path"),
        ({"content": "x", "namespace": "ok", "file_path": "/etc/passwd"}, "file_path"),
        ({"content": "x", "namespace": "ok", "file_path": "a/../../b"}, "file_path"),
        ({"namespace": "ok"}, "content"),
        ({"content": "x", "namespace": "ok", "unknown": 1}, "unknown"),
    ],
)
async def test_bad_stamp_requests_are_422_naming_the_field(
    client: Client, admin_headers: dict[str, str], body: dict[str, object], field: str
) -> None:
    response = await client.post("/stamp", json=body, headers=admin_headers)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in json.dumps(problem["errors"])


async def test_raw_stamp_needs_a_valid_namespace(client: Client, admin_headers: dict[str, str]) -> None:
    missing = await client.post("/stamp", content=b"x", headers={**admin_headers, **RAW})
    assert missing.status_code == 422
    bad = await client.post("/stamp", content=b"x", params={"namespace": "a b"}, headers={**admin_headers, **RAW})
    assert bad.status_code in (400, 422)
    traversal = await client.post("/stamp", content=b"x", params={"namespace": "ok", "file_path": "../x"},
                                  headers={**admin_headers, **RAW})  # fmt: skip
    assert traversal.status_code == 422


async def test_unknown_hash_is_404_problem(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.get(f"/stamp/{'ab' * 32}", headers=admin_headers)
    assert response.status_code == 404
    assert response.json()["type"].endswith("/not-found")
    assert (await client.get("/stamp/not-a-hash", headers=admin_headers)).status_code == 422


async def test_list_stamps_filters_and_pages(client: Client, admin_headers: dict[str, str]) -> None:
    namespace = _ns()
    ids = [
        (await _stamp(client, admin_headers, content=f"document {i}\n", namespace=namespace))["stamp_id"]
        for i in range(5)
    ]
    await _stamp(client, admin_headers, content="<p>page</p>\n", namespace=namespace, file_path="index.html")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"namespace": namespace, "content_type": "text/plain", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/stamps", params=params, headers=admin_headers)).json()
        seen += [item["stamp_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest first, the HTML stamp filtered out


async def test_stamp_reports_detected_types(client: Client, admin_headers: dict[str, str]) -> None:
    namespace = _ns()
    for _, data, file_path, expected in SAMPLES:
        params = {"namespace": namespace, **({"file_path": file_path} if file_path else {})}
        response = await client.post("/stamp", content=data, params=params, headers={**admin_headers, **RAW})
        assert response.json()["content_type"] == expected
