"""Governor state in Redis: shared by every process on every host that uses the server.

Every operation is ONE Lua script, so a reservation checks and takes room on all of its
windows atomically (Redis runs a script with nothing interleaved). Keys, per window
``<prefix>:<account>:<window>`` (prefix ``helios:gov``):

- ``…:meta`` hash: ``start`` and ``used`` of the running session (session windows);
- ``…:log`` hash: sliding usage, bucket end time -> units (at most ``SLIDING_BUCKETS``);
- ``…:res`` hash: open reservations, id -> ``"<units> <reserved at>"``.

Each key expires ``length_s + stale_after_s`` after its last write, so an idle budget
leaves nothing behind. With ``server_time`` (the default) the script reads the Redis
server's ``TIME``, so hosts whose clocks disagree still agree on every window; tests pass
``server_time=False`` to drive windows with their own clock. Redis Cluster would need the
keys of one call in one slot (a hash tag in the prefix); this targets one server.

Every script call runs under a :class:`~helios.breaker.CircuitBreaker`
(``governor.redis_breaker``): a deadline of 1 s by default, and after 3 failures or
timeouts in a row calls fail at once, without a round trip, until a probe after the
cool-down. The deadline is longer than the cache's (50 ms) because a timeout here refuses
the call rather than costing a miss: a burst of a few hundred concurrent reservations
queues for connections on a busy host for more than 100 ms. A failure is a
:class:`~helios.errors.GovernorStateError`; what the governor then does with the call is
its policy (``governor.on_state_error``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from helios.breaker import CircuitBreaker
from helios.config.breaker import BreakerSettings
from helios.errors import GovernorStateError
from helios.governance.state.base import DEFAULT_STALE_AFTER_S, GovernorState
from helios.governance.windows import (
    SLIDING_BUCKETS,
    Charge,
    ReserveResult,
    WindowSpec,
    WindowUsage,
)

_NO_LIMIT = 1e300
# what says the server is out of reach (an error reply is an answer)
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

_SCRIPT = """
local op, rid, stale = ARGV[1], ARGV[2], tonumber(ARGV[4])
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[3])
end
local EPS, BUCKETS = 1e-9, tonumber(ARGV[5])
local n = #KEYS / 3
local function fmt(x) if x == nil then return '' end return string.format('%.17g', x) end

local function load(i, kind, length, begin)
  local meta, res, log = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local w = {used = 0, reserved = 0, entries = {}, kind = kind, length = length}
  local r = redis.call('HGETALL', res)
  for j = 1, #r, 2 do
    local amount, at = string.match(r[j+1], '^(%S+) (%S+)$')
    if now - tonumber(at) > stale then redis.call('HDEL', res, r[j])
    else w.reserved = w.reserved + tonumber(amount) end
  end
  if kind == 'session' then
    local m = redis.call('HMGET', meta, 'start', 'used')
    w.start, w.used = tonumber(m[1]), tonumber(m[2]) or 0
    if w.start and w.start > now then
      w.start = now  -- the clock went backwards: the session started now
      redis.call('HSET', meta, 'start', fmt(now))
    end
    if w.start and now >= w.start + length then
      w.start, w.used = nil, 0
      redis.call('DEL', meta)
    end
    if (not w.start) and begin then
      w.start, w.used = now, 0
      redis.call('HSET', meta, 'start', fmt(now), 'used', '0')
    end
    if w.start then w.resets = w.start + length end
  else
    local l = redis.call('HGETALL', log)
    for j = 1, #l, 2 do
      local at, amount = tonumber(l[j]), tonumber(l[j+1])
      if at + length <= now then redis.call('HDEL', log, l[j])
      else
        w.used = w.used + amount
        w.entries[#w.entries+1] = {at, amount}
      end
    end
    table.sort(w.entries, function(a, b) return a[1] < b[1] end)
    if #w.entries > 0 then w.resets = w.entries[1][1] + length end
  end
  return w
end

local function frees_at(w, amount, limit)
  local held = w.reserved + amount
  if held > limit + EPS then return nil end
  if w.kind == 'session' then return w.resets end
  local need, freed = w.used + held - limit, 0
  for _, e in ipairs(w.entries) do
    freed = freed + e[2]
    if freed + EPS >= need then return e[1] + w.length end
  end
  return nil
end

local function touch(i, length)
  local ttl = math.ceil((length + stale) * 1000)
  for k = 3*i-2, 3*i do redis.call('PEXPIRE', KEYS[k], ttl) end
end

local out, all_fit, ws = {fmt(now)}, true, {}
for i = 1, n do
  local base = 5 + 4 * (i - 1)
  local kind, length = ARGV[base + 1], tonumber(ARGV[base + 2])
  local limit, amount = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local w = load(i, kind, length, op == 'reserve' or (op == 'settle' and amount > 0))
  w.amount, w.fits = amount, true
  if op == 'reserve' and amount > 0 and w.used + w.reserved + amount > limit + EPS then
    w.fits, all_fit = false, false
    w.frees = frees_at(w, amount, limit)
  end
  ws[i] = w
end
for i = 1, n do
  local w = ws[i]
  local meta, res, log = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  if op == 'reserve' and all_fit then
    redis.call('HSET', res, rid, fmt(w.amount) .. ' ' .. fmt(now))
    w.reserved = w.reserved + w.amount
    touch(i, w.length)
  elseif op == 'settle' then
    redis.call('HDEL', res, rid)
    if w.amount > 0 then
      if w.kind == 'session' then
        redis.call('HINCRBYFLOAT', meta, 'used', fmt(w.amount))
      else
        local size = w.length / BUCKETS
        local bucket = math.ceil(now / size) * size
        redis.call('HINCRBYFLOAT', log, fmt(bucket), fmt(w.amount))
      end
      w.used = w.used + w.amount
    end
    touch(i, w.length)
  end
  out[#out+1] = fmt(w.used)
  out[#out+1] = fmt(w.reserved)
  out[#out+1] = fmt(w.resets)
  out[#out+1] = fmt(w.frees)
  out[#out+1] = w.fits and '1' or '0'
end
return out
"""


class RedisState(GovernorState):
    breaker: CircuitBreaker

    def __init__(
        self,
        client: Redis | str,
        *,
        prefix: str = "helios:gov",
        server_time: bool = True,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        max_connections: int = 32,
        breaker: BreakerSettings | None = None,
        socket_timeout_s: float = 2.0,
    ) -> None:
        """``breaker``: deadline and circuit breaker (default: :class:`BreakerSettings`
        with a 1 s deadline); ``socket_timeout_s`` bounds the driver's own waits."""
        self._owns_client = isinstance(client, str)
        if isinstance(client, str):
            # a bounded pool that makes callers wait: a burst of concurrent reservations
            # must queue for a connection, not fail with "too many connections"
            pool = BlockingConnectionPool.from_url(
                client,
                max_connections=max_connections,
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=socket_timeout_s,
            )
            client = Redis(connection_pool=pool)
        self._client: Redis = client
        kwargs = self._client.connection_pool.connection_kwargs
        where = (
            kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        )
        guard = breaker if breaker is not None else BreakerSettings(deadline_s=1.0)
        self.breaker = CircuitBreaker(
            f"Redis governor state at {where}",
            error=lambda message, retry: GovernorStateError(message, retry_after_s=retry),
            trips=lambda exc: isinstance(exc, _UNREACHABLE),
            deadline_s=guard.deadline_s,
            failures=guard.failures,
            cooldown_s=guard.cooldown_s,
        )
        self.prefix = prefix
        self.server_time = server_time
        self.stale_after_s = stale_after_s
        self._script = self._client.register_script(_SCRIPT)

    def keys(self, spec: WindowSpec) -> list[str]:
        base = f"{self.prefix}:{spec.key}"
        return [f"{base}:meta", f"{base}:res", f"{base}:log"]

    async def try_reserve(
        self, reservation_id: str, charges: Sequence[Charge], now: float
    ) -> ReserveResult:
        values = await self._run("reserve", reservation_id, charges, now)
        usages = _usages(charges, values)
        return ReserveResult(all(u.fits for u in usages), float(values[0]), tuple(usages))

    async def settle(self, reservation_id: str, charges: Sequence[Charge], now: float) -> None:
        await self._run("settle", reservation_id, charges, now)

    async def usage(self, windows: Sequence[WindowSpec], now: float) -> list[WindowUsage]:
        charges = [Charge(spec, 0.0) for spec in windows]
        return _usages(charges, await self._run("usage", "", charges, now))

    async def close(self) -> None:
        await self.breaker.aclose()
        if self._owns_client:
            await self._client.aclose(close_connection_pool=True)

    async def _run(
        self, op: str, reservation_id: str, charges: Sequence[Charge], now: float
    ) -> list[str]:
        keys: list[str] = []
        args: list[Any] = [
            op,
            reservation_id,
            "" if self.server_time else repr(now),
            repr(self.stale_after_s),
            SLIDING_BUCKETS,
        ]
        for charge in charges:
            keys.extend(self.keys(charge.window))
            limit = min(charge.limit, _NO_LIMIT)
            args.extend([charge.window.kind, repr(charge.window.length_s), repr(limit)])
            args.append(repr(charge.amount))
        try:
            raw = await self.breaker.call(op, self._script(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            raise GovernorStateError(
                f"{self.breaker.store}: {op} failed: {type(exc).__name__}: {exc}",
                retry_after_s=self.breaker.retry_after_s() or None,
            ) from exc
        return [item.decode() if isinstance(item, bytes) else str(item) for item in raw]


def _optional(text: str) -> float | None:
    return float(text) if text else None


def _usages(charges: Sequence[Charge], values: list[str]) -> list[WindowUsage]:
    usages = []
    for index, charge in enumerate(charges):
        used, reserved, resets, frees, fits = values[1 + 5 * index : 6 + 5 * index]
        usages.append(
            WindowUsage(
                charge.window.key,
                float(used),
                float(reserved),
                _optional(resets),
                _optional(frees),
                fits=fits == "1",
            )
        )
    return usages
