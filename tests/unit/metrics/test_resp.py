"""The small Redis client's RESP2 codec (``services.resp``): commands out, replies in, split anywhere."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from omninode_bridge.modules.metrics.services.resp import ScriptPool, encode_command, parse_reply


def test_encode_command_is_an_array_of_bulk_strings() -> None:
    assert encode_command("EVALSHA", "ab", 1, b"k\r\n", 0.5) == (
        b"*5\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$3\r\nk\r\n\r\n$3\r\n0.5\r\n"
    )


def test_parse_reply_of_a_script_result() -> None:
    # The start script's reply: {stats or false, ttl, spent or false, taken}.
    raw = b"*4\r\n$9\r\n[1,2,3.5]\r\n:-2\r\n$-1\r\n:1\r\n+OK\r\n"
    value, end = parse_reply(raw)
    assert value == [b"[1,2,3.5]", -2, None, 1]
    assert parse_reply(raw, end) == (b"OK", len(raw))


def test_parse_reply_waits_for_every_byte() -> None:
    raw = b"*2\r\n$5\r\nhello\r\n*1\r\n:7\r\n"
    for cut in range(len(raw)):
        _, end = parse_reply(raw[:cut])
        assert end == 0, cut  # incomplete: nothing consumed
    assert parse_reply(raw) == ([b"hello", [7]], len(raw))


def test_error_replies_are_returned_not_raised() -> None:
    value, _ = parse_reply(b"*2\r\n-NOSCRIPT No matching script\r\n:1\r\n")
    assert isinstance(value[0], ResponseError)
    assert str(value[0]).startswith("NOSCRIPT")
    with pytest.raises(RedisConnectionError):
        parse_reply(b"?what\r\n")


def test_pool_copies_plain_clients_only() -> None:
    assert ScriptPool.of(Redis.from_url("redis://user:secret@127.0.0.1:6390/3")) is not None
    assert ScriptPool.of(Redis.from_url("unix:///tmp/redis.sock?db=1")) is not None
    assert ScriptPool.of(Redis.from_url("rediss://127.0.0.1:6390/0")) is None  # TLS stays with redis-py
