"""The wrk request bodies (Lua) the benchmarks share: 1 KiB to hash, distinct 1 KiB stamps, Claude-style hooks."""

from __future__ import annotations

__all__ = ["BARE_BODY", "BATCH_BODY", "HASH_BODY", "HOOK_BODY", "STAMP_BODY"]

HASH_BODY = 'local payload = string.rep("h", 1024)\nfunction body(tid, n) return payload end\n'
BARE_BODY = HASH_BODY
STAMP_BODY = """local pad = string.rep("x", 960)
local run = "{run}"
function body(tid, n)
  return '{{"content":"' .. run .. ' ' .. tid .. ' ' .. n .. ' ' .. pad .. '","namespace":"bench-' .. run .. '"}}'
end
"""
HOOK = """local pad = string.rep("x", 200)
local run = "{run}"
local function hook(tid, n)
  return '{{"source":"bench-agent","event_type":"post_tool_use","session_id":"bench-' .. run .. '-' .. (n % 64)
    .. '","tool_name":"Bash","tool_call_id":"' .. run .. '-' .. tid .. '-' .. n
    .. '","data":{{"n":' .. n .. ',"exit_code":0,"output":"' .. pad .. '"}}}}'
end
"""
HOOK_BODY = HOOK + "function body(tid, n) return hook(tid, n) end\n"
BATCH_BODY = (
    HOOK
    + """function body(tid, n)
  local parts = {{}}
  for i = 1, 1000 do parts[i] = hook(tid, n * 1000 + i) end
  return '{{"events":[' .. table.concat(parts, ",") .. ']}}'
end
"""
)
