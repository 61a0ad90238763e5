// The one read behind every watched value: a Lua script, so the type check, the size check and
// the read are one atomic step (no value can grow between the check and the read) and a value
// over `--max-watch-value` never leaves Redis.

enum WatchScript {
    /// Entries of a stream a watcher sees: the newest ones (the value of a stream is its tail;
    /// `stream=` subscriptions are for every entry).
    static let streamEntries = 100

    /// KEYS[1]: the key. ARGV[1]: the largest size read, bytes. ARGV[2]: stream entries.
    /// Returns `{type}` for a missing key or a type it does not read (a module's), `{type, size}`
    /// for a value over the limit, `{type, size, value}` otherwise. Size: a string's length; a
    /// collection's element bytes plus one per element (an empty list element still costs the
    /// client something). A collection with more elements than the limit has bytes is not read
    /// at all: its size is then Redis's own estimate (MEMORY USAGE, sampled), so a key of
    /// millions of elements costs Redis no full walk.
    static let read = """
        local k = KEYS[1]
        local max = tonumber(ARGV[1])
        local t = redis.call('TYPE', k)['ok']
        if t == 'string' then
          local n = redis.call('STRLEN', k)
          if n > max then return {t, n} end
          return {t, n, redis.call('GET', k)}
        end
        local count
        if t == 'hash' then count = redis.call('HLEN', k) * 2
        elseif t == 'set' then count = redis.call('SCARD', k)
        elseif t == 'zset' then count = redis.call('ZCARD', k) * 2
        elseif t == 'list' then count = redis.call('LLEN', k)
        elseif t == 'stream' then count = 0
        else return {t} end
        if count > max then return {t, redis.call('MEMORY', 'USAGE', k) or count} end
        local v
        if t == 'hash' then v = redis.call('HGETALL', k)
        elseif t == 'set' then v = redis.call('SMEMBERS', k)
        elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
        elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
        else v = redis.call('XREVRANGE', k, '+', '-', 'COUNT', tonumber(ARGV[2])) end
        local size = 0
        for _, item in ipairs(v) do
          if type(item) == 'table' then
            size = size + #item[1] + 1
            for _, part in ipairs(item[2]) do size = size + #part + 1 end
          else
            size = size + #item + 1
          end
        end
        if size > max then return {t, size} end
        return {t, size, v}
        """

    /// The script's arguments for `key`.
    static func command(key: [UInt8], maxValue: Int) -> [[UInt8]] {
        [Array("EVAL".utf8), Array(read.utf8), Array("1".utf8), key, Array(String(maxValue).utf8), Array(String(streamEntries).utf8)]
    }
}
