// The Lua scripts behind presence. Each runs atomically on the channel's slot and reads Redis's
// own clock, so hosts' clocks play no part in leases, and two Heralds reaping one channel at
// once cannot both find (and announce) the same expired member: the first script removes it,
// the second no longer sees it. Every change is announced on the channel's event channel from
// inside the script that made it, so a join or leave is published exactly once.
// Common KEYS: the members hash, the leases sorted set. Common ARGV: the event channel, the
// channel as a JSON string.

enum PresenceScripts {
    /// Redis's clock in ms (TIME inside a script is replicated by effect since Redis 5).
    private static let redisNow = "local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

    /// Turns a member's JSON into an event of `kind` by splicing `type` and `channel` in front.
    private static let event = """
        local function event(kind, member)
          return '{"type":"' .. kind .. '","channel":' .. ARGV[2] .. ',' .. string.sub(member, 2)
        end

        """

    /// Removes (at most 1,000 of) the members whose lease ended, announcing each one's leave;
    /// only when ARGV[3] is "1" (not in the quiet time after a reconnect, see PresenceService).
    private static let reap = """
        if ARGV[3] == '1' then
          for _, client in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)) do
            local member = redis.call('HGET', KEYS[1], client)
            redis.call('ZREM', KEYS[2], client)
            if member then
              redis.call('HDEL', KEYS[1], client)
              redis.call('PUBLISH', ARGV[1], event('leave', member))
            end
          end
        end

        """

    /// Keeps both keys a while past the last sign of life (`keep` ms), so a channel whose
    /// every Herald vanished does not stay in Redis for ever.
    private static let keep = """
        local function keep(ms)
          redis.call('PEXPIRE', KEYS[1], ms)
          redis.call('PEXPIRE', KEYS[2], ms)
        end

        """

    /// ARGV[3..]: lease ms, keep ms, client, member JSON. Announces a join only for a client
    /// not yet present (a re-join after a lost lease is announced, a repeated one is not).
    static let join =
        redisNow + event + keep + """
            local fresh = redis.call('HSET', KEYS[1], ARGV[5], ARGV[6])
            redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[5])
            keep(tonumber(ARGV[4]))
            if fresh == 1 then redis.call('PUBLISH', ARGV[1], event('join', ARGV[6])) end
            return fresh
            """

    /// ARGV[3]: client. Announces the leave only if the client was present.
    static let leave =
        event + """
            local member = redis.call('HGET', KEYS[1], ARGV[3])
            redis.call('ZREM', KEYS[2], ARGV[3])
            if not member then return 0 end
            redis.call('HDEL', KEYS[1], ARGV[3])
            redis.call('PUBLISH', ARGV[1], event('leave', member))
            return 1
            """

    /// ARGV[3..]: "1" to reap, lease ms, keep ms, then this loop's clients. Reaps, then renews the leases of
    /// the clients still present; answers the clients that were not (reaped while their Herald
    /// could not reach Redis, or lost with Redis's data), which their Herald joins again. A
    /// client holds a lease exactly while it is in the members hash (every script changes
    /// both), so the leases tell who is present: two commands per 1,000 clients (ZMSCORE and
    /// ZADD XX, in chunks that stay within Lua's stack for `unpack`), not two per client.
    static let refresh =
        redisNow + event + keep + reap + """
            local lease = now + tonumber(ARGV[4])
            local missing = {}
            local first = 6
            while first <= #ARGV do
              local last = math.min(first + 999, #ARGV)
              local leases = redis.call('ZMSCORE', KEYS[2], unpack(ARGV, first, last))
              local renew = {}
              for i = first, last do
                if leases[i - first + 1] then
                  renew[#renew + 1] = lease
                  renew[#renew + 1] = ARGV[i]
                else
                  missing[#missing + 1] = ARGV[i]
                end
              end
              if #renew > 0 then redis.call('ZADD', KEYS[2], 'XX', unpack(renew)) end
              first = last + 1
            end
            if #ARGV >= 6 then keep(tonumber(ARGV[5])) end
            return missing
            """

    /// ARGV[3..]: "1" to reap, how many members to list. Reaps, then answers `{clients, users, members}`:
    /// the counts over every member, and the first members found.
    static let read =
        redisNow + event + reap + """
            local limit = tonumber(ARGV[4])
            local users, distinct, listed = {}, 0, {}
            for _, member in ipairs(redis.call('HVALS', KEYS[1])) do
              local ok, value = pcall(cjson.decode, member)
              if ok and type(value) == 'table' and type(value.user) == 'string' and not users[value.user] then
                users[value.user] = true
                distinct = distinct + 1
              end
              if #listed < limit then listed[#listed + 1] = member end
            end
            return {redis.call('HLEN', KEYS[1]), distinct, listed}
            """
}
