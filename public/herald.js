/*! herald.js: a small browser client for Herald (Redis pub/sub over WebSocket). No build step.
 *
 * Load it either way; both define `Herald` on `globalThis` (`window.Herald`):
 *   <script src="/herald.js"></script>                  classic script
 *   <script type="module"> import "/herald.js"; const { Herald } = globalThis; </script>
 *
 *   const h = new Herald();                       // ws(s)://<this host>/subscribe
 *   h.on("state", (state, info) => console.log(state, info));
 *   h.subscribe("news", (msg) => console.log(msg.channel, msg.data));
 *   h.psubscribe("mail-*", (msg) => console.log(msg.pattern, msg.channel, msg.data));
 *   const answer = await h.publish("news", "hello");   // {type:"published", channel, receivers}
 *   h.unsubscribe("news");
 *   h.on("gap", (gap) => reloadFromSomewhere(gap));   // deliveries may have been missed
 *   h.stream("orders", (e) => console.log(e.id, e.fields), { from: "0" });  // replay + follow,
 *                                                      // resumed after the last id on reconnect
 *   h.subscribe("room", onMessage, { presence: true });  // also join the room's presence
 *   h.on("join", (m) => console.log(m.user, "joined", m.channel));   // and "leave"
 *   const who = await h.presence("room");  // {clients, users, members:[{client, user, info, since}]}
 *   const stop = h.watch(["order:42"], ["cart:*"], {value: (v) => show(v.key, v.value)});  // key values
 *
 *   new Herald(url, {shared: true})   // one WebSocket per browser, held by one tab for all its
 *                                     // tabs (Web Locks + BroadcastChannel); h.shared says which
 *
 * The connection is opened at once and reopened after any loss, with exponential backoff and
 * jitter; every subscription is restored on the new connection, followed by a "gap" event per
 * subscription (messages published while disconnected are gone: pub/sub is at-most-once).
 * Herald's own {"type":"gap"} notices (its Redis link came back) are passed on as "gap" too.
 * Every "gap" event is one object: {type:"gap", kind, channel|pattern|stream, source}, where
 * kind is "channel", "pattern", "shard" or "stream" and source is "reconnect" (this client's
 * connection was lost) or "herald" (Herald's notice: its Redis link came back, a sharded slot
 * moved, or stream entries after the resume point were trimmed: then `after` and `earliest`
 * too). An application refetches what it may have missed (e.g. GET /streams/{key}).
 *
 * The file has no import or export statements on purpose, so that the same file runs as a
 * classic script and as a module.
 */
(function (root) {
  "use strict";

  // Watch ops a client keeps waiting on Herald at once (Herald allows a connection 16; a
  // shared connection's holder keeps its tabs' ops within the same number).
  const WATCH_WINDOW = 8;

  const DEFAULTS = {
    minDelay: 500, // ms: first reconnect delay (before jitter)
    maxDelay: 15000, // ms: backoff cap
    stableAfter: 5000, // ms: a connection that stayed open this long resets the backoff
    requestTimeout: 10000, // ms: publish/ping answers, and a heartbeat's pong
    connectTimeout: 10000, // ms: a connection attempt that has not opened by then is retried
    heartbeat: 30000, // ms of silence from Herald before a ping op checks the link; 0: never
    reconnect: true,
    // One connection per browser: the tabs of this origin that use the same url (and the same
    // sharedKey) share one WebSocket, held by one of them (README, "Shared connection").
    shared: false,
    // What tells shares apart besides the url; default: the token when it is a string. Give it
    // (e.g. the user's id) when the token is a function, if tabs of one browser can belong to
    // different users.
    sharedKey: null,
    // Credential when Herald runs with --api-keys or --jwt-secret: sent as ?token= (browsers
    // cannot set headers on a WebSocket). A string, or a function returning one (or a Promise
    // of one), called before every connection attempt so that a short-lived JWT can be renewed,
    // and again when Herald warns that the token expires ("token_expiring"): the new token is
    // sent in a refresh op on the open connection, which stays open (no reconnect).
    token: null,
    WebSocket: null, // a WebSocket implementation; default: globalThis.WebSocket
  };

  // Subscription kinds: control-message op and field names (README, "Control messages").
  const KINDS = {
    channel: { sub: "subscribe", subField: "channels", unsubField: "channels", delivery: "message" },
    pattern: { sub: "psubscribe", subField: "patterns", unsubField: "patterns", delivery: "pmessage" },
    shard: { sub: "ssubscribe", subField: "channels", unsubField: "shards", delivery: "smessage" },
  };
  const KIND_OF_DELIVERY = { message: "channel", pmessage: "pattern", smessage: "shard" };

  /** An error answered by Herald ({"type":"error"}) or raised by the client (`code` tells). */
  class HeraldError extends Error {
    constructor(code, message, answer) {
      super(message || code);
      this.name = "HeraldError";
      this.code = code;
      this.answer = answer || null;
    }
  }

  /** A fresh idempotency key: a random UUID where the browser has one, else 32 random hex digits. */
  function newKey() {
    const c = root.crypto;
    if (c && typeof c.randomUUID === "function") return c.randomUUID();
    let out = "";
    for (let i = 0; i < 32; i++) out += Math.floor(Math.random() * 16).toString(16);
    return out;
  }

  function defaultUrl() {
    const loc = root.location;
    if (!loc || !loc.host) throw new TypeError("Herald: pass the URL of /subscribe (no page location to derive it from)");
    return (loc.protocol === "https:" ? "wss:" : "ws:") + "//" + loc.host + "/subscribe";
  }

  /** Absolute ws(s):// URL from "ws://…", "http(s)://…" or a path on this page's host. */
  function resolveUrl(url) {
    if (url === undefined || url === null || url === "") return defaultUrl();
    const text = String(url);
    if (/^wss?:\/\//i.test(text)) return text;
    const base = root.location && root.location.href ? root.location.href : undefined;
    const u = new URL(text, base);
    if (u.protocol === "http:") u.protocol = "ws:";
    else if (u.protocol === "https:") u.protocol = "wss:";
    return u.toString();
  }

  function namesArg(names, what) {
    const list = Array.isArray(names) ? names.slice() : [names];
    if (list.length === 0) throw new TypeError("Herald: " + what + " needs at least one name");
    list.forEach(function (n) {
      if (typeof n !== "string" || n === "") throw new TypeError("Herald: " + what + " names must be non-empty strings");
    });
    return Array.from(new Set(list));
  }

  /** Order of two stream entry ids "ms-seq": negative, zero or positive. */
  function compareIds(a, b) {
    return compareKeys(idKey(a), idKey(b));
  }

  function idKey(id) {
    const [ms, seq] = id.split("-").map(Number);
    return [ms, seq || 0];
  }

  function compareKeys(a, b) {
    if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
    return a[1] === b[1] ? 0 : (a[1] < b[1] ? -1 : 1);
  }

  /**
   * A stream position as Herald reads `from` ("0", an id "ms-seq" (exclusive), a Unix time in
   * ms or an ISO-8601 time (inclusive)), as {key, text, time}: key orders positions (a time T
   * sorts just before the id T-0); null for "$" (only new entries: no position).
   */
  function positionOf(from) {
    if (from === "$") return null;
    if (/^\d+-\d+$/.test(from)) return { key: idKey(from), text: from, time: false };
    if (/^\d+$/.test(from)) {
      const ms = Number(from);
      return ms === 0 ? { key: [0, -1], text: "0", time: false } : { key: [ms, -1], text: from, time: true };
    }
    const ms = Date.parse(from);
    return Number.isNaN(ms) ? null : { key: [ms, -1], text: String(ms), time: true };
  }

  /** Names for watch(): undefined/null → none; a string or a list of non-empty strings. */
  function watchNames(names, what) {
    if (names === undefined || names === null) return [];
    const list = Array.isArray(names) ? names : [names];
    list.forEach((n) => {
      if (typeof n !== "string" || n === "") throw new TypeError("Herald.watch: " + what + " must be non-empty strings");
    });
    return Array.from(new Set(list));
  }

  /** Add `record` (a watch) to each name's set. */
  function addNames(map, names, record) {
    names.forEach((n) => {
      if (!map.has(n)) map.set(n, new Set());
      map.get(n).add(record);
    });
  }

  /**
   * Remove the records that `matches` from each name's set (calling `removed(record, name)`
   * for each); returns the names left with none.
   */
  function dropNames(map, names, matches, removed) {
    const gone = [];
    names.forEach((n) => {
      const set = map.get(n);
      if (!set) return;
      Array.from(set).forEach((r) => {
        if (!matches(r)) return;
        set.delete(r);
        if (removed) removed(r, n);
      });
      if (set.size === 0) {
        map.delete(n);
        gone.push(n);
      }
    });
    return gone;
  }

  function callHandler(self, fn, arg) {
    if (typeof fn !== "function") return;
    try {
      fn.call(self, arg);
    } catch (err) {
      setTimeout(() => { throw err; }); // a handler's bug must not break the client
    }
  }

  const globCache = new Map();

  /** Whether `text` matches a Redis glob (`*`, `?`, `[abc]`, `[^a-z]`, `\\` escapes), as Herald and Redis match. */
  function globMatch(glob, text) {
    let re = globCache.get(glob);
    if (!re) {
      let src = "^";
      for (let i = 0; i < glob.length; i++) {
        const c = glob[i];
        if (c === "*") src += "[\\s\\S]*";
        else if (c === "?") src += "[\\s\\S]";
        else if (c === "\\" && i + 1 < glob.length) src += escapeRegExp(glob[++i]);
        else if (c === "[" && glob.indexOf("]", i + 1) > i + 1) {
          const end = glob.indexOf("]", i + 1);
          let body = glob.slice(i + 1, end);
          const negate = body[0] === "^";
          if (negate) body = body.slice(1);
          src += "[" + (negate ? "^" : "") + body.replace(/[\\\]\[^]/g, "\\$&") + "]";
          i = end;
        } else src += escapeRegExp(c);
      }
      re = new RegExp(src + "$");
      if (globCache.size > 1000) globCache.clear();
      globCache.set(glob, re);
    }
    return re.test(text);
  }

  function escapeRegExp(c) {
    return c.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
  }

  class Herald {
    /**
     * @param {string} [url] ws(s)://host/subscribe, http(s)://…, or a path; default: this page's /subscribe
     * @param {object} [options] see DEFAULTS above
     */
    constructor(url, options) {
      this.url = resolveUrl(url);
      this.options = Object.assign({}, DEFAULTS, options || {});
      this.state = "idle"; // idle → connecting → open → reconnecting → … ; closed after close()
      this.attempt = 0; // failed attempts since the last stable connection
      this._ws = null;
      this._listeners = new Map(); // event → Set(fn)
      this._subs = { channel: new Map(), pattern: new Map(), shard: new Map() }; // name → Set(handler)
      this._confirmed = { channel: new Set(), pattern: new Set(), shard: new Set() }; // on this socket
      this._waiters = []; // {kind, names:Set, resolve, reject} for subscribe() promises
      this._pending = new Map(); // id → {msg, sent, resolve, reject, timer}: publish, ping, unsubscribe
      this._subRequests = new Map(); // id → {kind, names, waiter} of subscribe ops in flight
      this._gapAfter = new Set(); // ids of re-subscriptions after a reconnect: "gap" once confirmed
      this._streams = new Map(); // stream key → {handlers:Set, from, lastId}
      this._presence = new Set(); // channels whose presence is joined (again after a reconnect)
      this._watchRecords = new Set(); // one per watch(): {keys, patterns, handlers, id, stopped}
      this._watchKeys = new Map(); // watched key → Set(records)
      this._watchPatterns = new Map(); // watched glob → Set(records)
      this._watchQueue = []; // records whose watch op waits for room (WATCH_WINDOW) or a connection
      this._watchInFlight = new Map(); // id → record of the watch ops sent on this connection
      this._nextId = 1;
      this._openedAt = 0;
      this._reconnectTimer = null;
      this._heartbeatTimer = null;
      this._lastFrameAt = 0;
      this._everOpened = false;
      this._closedByUser = false;
      this._onWake = this._wake.bind(this);
      if (root.addEventListener) root.addEventListener("online", this._onWake);
      if (root.document && root.document.addEventListener) root.document.addEventListener("visibilitychange", this._onWake);
      // shared: {mode: "off" | "fallback" | "waiting" | "holder" | "via", tab, holder, tabs};
      // a "shared" event follows every change.
      this.shared = { mode: "off" };
      this._share = null; // a SharedTab: the connection goes through the tab holding the share
      if (this.options.shared) {
        const missing = sharingMissing();
        if (missing) this.shared = { mode: "fallback", reason: missing + " is missing: a connection per tab" };
        else this._share = new SharedTab(this);
      }
      this._connect();
    }

    // ------------------------------------------------------------------ events

    /** on("state"|"open"|"close"|"message"|"gap"|"dropped"|"join"|"leave"|"watch"|"shared"|"error", fn); returns a function that removes fn. */
    on(event, fn) {
      if (typeof fn !== "function") throw new TypeError("Herald.on needs a function");
      if (!this._listeners.has(event)) this._listeners.set(event, new Set());
      this._listeners.get(event).add(fn);
      return () => this.off(event, fn);
    }

    off(event, fn) {
      const set = this._listeners.get(event);
      if (set) set.delete(fn);
    }

    _emit(event) {
      const args = Array.prototype.slice.call(arguments, 1);
      const set = this._listeners.get(event);
      if (!set) return;
      Array.from(set).forEach((fn) => {
        try {
          fn.apply(this, args);
        } catch (err) {
          setTimeout(() => { throw err; }); // a listener's bug must not break the client
        }
      });
    }

    _setState(state, info) {
      this.state = state;
      this._emit("state", state, info || {});
    }

    // ------------------------------------------------------------------ subscriptions

    /**
     * Subscribe to channel(s). Resolves once Herald confirmed every name (on this or a later
     * connection). With `{presence: true}` the channels' presence is joined too: "join" and
     * "leave" events follow for every member, this client's own join first.
     */
    subscribe(channels, handler, options) {
      if (!(options && options.presence)) return this._subscribe("channel", channels, handler);
      const list = namesArg(channels, "subscribe");
      const held = list.filter((n) => this._subs.channel.has(n) && !this._presence.has(n));
      list.forEach((n) => this._presence.add(n));
      const done = this._subscribe("channel", list, handler);
      if (held.length > 0 && this._isOpen()) this._sendSubscribe("channel", held, null, false);
      return done;
    }
    /** Subscribe to glob pattern(s) (PSUBSCRIBE). */
    psubscribe(patterns, handler) { return this._subscribe("pattern", patterns, handler); }
    /** Subscribe to shard channel(s) (SSUBSCRIBE, Redis 7). */
    ssubscribe(shards, handler) { return this._subscribe("shard", shards, handler); }

    /**
     * Drop channel(s): with a handler only that handler, else every handler of those names; with
     * no argument every channel, pattern and shard. Herald is told once no handler is left.
     */
    unsubscribe(channels, handler) {
      if (channels === undefined) {
        return Promise.all(Object.keys(KINDS).map((kind) => this._unsubscribe(kind, Array.from(this._subs[kind].keys()))));
      }
      return this._unsubscribe("channel", namesArg(channels, "unsubscribe"), handler);
    }
    punsubscribe(patterns, handler) {
      return this._unsubscribe("pattern", patterns === undefined ? Array.from(this._subs.pattern.keys()) : namesArg(patterns, "punsubscribe"), handler);
    }
    sunsubscribe(shards, handler) {
      return this._unsubscribe("shard", shards === undefined ? Array.from(this._subs.shard.keys()) : namesArg(shards, "sunsubscribe"), handler);
    }

    /**
     * Read a Redis stream: replay from `options.from` ("0" everything, "$" only new entries,
     * an entry id, a Unix time in ms or an ISO-8601 time; default "$"), then follow it.
     * Streams are chosen when the WebSocket opens, so this reconnects at once. After any
     * reconnect the stream resumes after the last entry id it delivered: nothing is missed and
     * no entry is handed over twice. A stream read from "$" that has delivered nothing yet has
     * no id to resume from: after a reconnect it emits a "gap" event (kind "stream").
     * Returns a function that stops reading the stream.
     */
    stream(key, handler, options) {
      if (typeof key !== "string" || key === "") throw new TypeError("Herald.stream needs a stream key");
      if (handler !== undefined && typeof handler !== "function") throw new TypeError("Herald: a handler must be a function");
      let entry = this._streams.get(key);
      if (!entry) {
        const from = String((options && options.from) || "$");
        // floor: the key of the newest entry this stream does not want (what `from` excludes),
        // so that a connection resumed from another stream's older position skips it.
        entry = { handlers: new Set(), from: from, lastId: null, floor: positionOf(from), connected: false };
        if (entry.floor) entry.floor = entry.floor.time ? [entry.floor.key[0] - 1, Infinity] : entry.floor.key;
        this._streams.set(key, entry);
        this._reopen();
      }
      if (handler) entry.handlers.add(handler);
      return () => {
        if (handler) entry.handlers.delete(handler);
        if (!handler || entry.handlers.size === 0) {
          if (this._streams.get(key) === entry) {
            this._streams.delete(key);
            this._reopen();
          }
        }
      };
    }

    /**
     * The query for the streams read on the next connection. Herald takes one `from` for all of
     * them: the oldest position any stream needs (after its last delivered id, or its own
     * `from` while it has delivered nothing). Entries a stream already handed over, or that lie
     * before its own `from`, are skipped when they come again.
     */
    _streamQuery() {
      if (this._streams.size === 0) return "";
      const parts = [];
      let oldest = null;
      this._streams.forEach((entry, key) => {
        parts.push("stream=" + encodeURIComponent(key));
        const pos = entry.lastId ? positionOf(entry.lastId) : positionOf(entry.from);
        if (pos && (!oldest || compareKeys(pos.key, oldest.key) < 0)) oldest = pos;
      });
      parts.push("from=" + encodeURIComponent(oldest ? oldest.text : "$"));
      return parts.join("&");
    }

    /**
     * Streams that started at "$" and delivered nothing yet have no position to resume from:
     * entries appended while the connection was down may be missed. Tell the application.
     */
    _streamGapsAfterReconnect() {
      this._streams.forEach((entry, key) => {
        if (!entry.lastId && entry.from === "$" && entry.connected) {
          this._emit("gap", { type: "gap", kind: "stream", stream: key, source: "reconnect" });
        }
      });
    }

    /** Reconnect now (the set of streams changed) without counting it as a failure. */
    _reopen() {
      if (this._closedByUser || this.state === "idle") return;
      if (this._ws) {
        const ws = this._ws;
        this._ws = null;
        try { ws.close(1000, "streams changed"); } catch (err) { /* closing */ }
        this._stopHeartbeat();
        Object.keys(KINDS).forEach((k) => this._confirmed[k].clear());
        this._failPending("disconnected", "the connection was reopened before Herald answered", false);
        this._subRequests.clear();
        this._gapAfter.clear();
        this._resetWatchOps();
      }
      this._connect();
    }

    /** What is subscribed (wanted), by kind: {channel:[..], pattern:[..], shard:[..]}. */
    subscriptions() {
      const out = {};
      Object.keys(KINDS).forEach((kind) => { out[kind] = Array.from(this._subs[kind].keys()); });
      return out;
    }

    /** What Herald confirmed on the current connection, by kind (empty while disconnected). */
    active() {
      const out = {};
      Object.keys(KINDS).forEach((kind) => { out[kind] = Array.from(this._confirmed[kind]); });
      return out;
    }

    /** Whether Herald confirmed `name` of `kind` ("channel", "pattern", "shard") on the current connection. */
    isActive(kind, name) {
      return Boolean(this._confirmed[kind] && this._confirmed[kind].has(name));
    }

    _subscribe(kind, names, handler) {
      const list = namesArg(names, KINDS[kind].sub);
      if (handler !== undefined && typeof handler !== "function") throw new TypeError("Herald: a handler must be a function");
      const fresh = [];
      list.forEach((name) => {
        let set = this._subs[kind].get(name);
        if (!set) {
          set = new Set();
          this._subs[kind].set(name, set);
          fresh.push(name);
        }
        if (handler) set.add(handler);
      });
      const waiting = list.filter((n) => !this._confirmed[kind].has(n));
      let waiter = null;
      const done = waiting.length === 0
        ? Promise.resolve()
        : new Promise((resolve, reject) => {
          waiter = { kind: kind, names: new Set(waiting), resolve: resolve, reject: reject };
          this._waiters.push(waiter);
        });
      // While closed, nothing is sent now: the next open subscribes to everything wanted.
      if (fresh.length > 0 && this._isOpen()) this._sendSubscribe(kind, fresh, waiter, false);
      return done;
    }

    _sendSubscribe(kind, names, waiter, afterReconnect) {
      const id = this._nextId++;
      const msg = { op: KINDS[kind].sub, id: id };
      if (kind === "channel") {
        // One op cannot mix channels with presence and without: those without go on their own.
        const joining = names.filter((n) => this._presence.has(n));
        if (joining.length > 0 && joining.length < names.length) {
          this._sendSubscribe(kind, names.filter((n) => !this._presence.has(n)), waiter, afterReconnect);
          names = joining;
        }
        if (joining.length > 0) msg.presence = true;
      }
      msg[KINDS[kind].subField] = names;
      this._subRequests.set(id, { kind: kind, names: names, waiter: waiter });
      if (afterReconnect) this._gapAfter.add(id);
      this._send(msg);
    }

    /** Herald refused a subscribe: reject its promise; a malformed one is not retried either. */
    _subscribeFailed(request, err) {
      if (request.waiter) {
        this._waiters = this._waiters.filter((w) => w !== request.waiter);
        request.waiter.reject(err);
      }
      if (err.code === "bad_request") {
        request.names.forEach((n) => this._subs[request.kind].delete(n));
      }
      this._emit("error", err);
    }

    _unsubscribe(kind, names, handler) {
      const drop = [];
      names.forEach((name) => {
        const set = this._subs[kind].get(name);
        if (!set) return;
        if (handler) set.delete(handler);
        if (!handler || set.size === 0) {
          this._subs[kind].delete(name);
          if (kind === "channel") this._presence.delete(name);
          drop.push(name);
        }
      });
      if (drop.length === 0) return Promise.resolve();
      this._waiters.forEach((w) => { if (w.kind === kind) drop.forEach((n) => w.names.delete(n)); });
      this._settleWaiters();
      if (!this._isOpen()) {
        drop.forEach((n) => this._confirmed[kind].delete(n));
        return Promise.resolve();
      }
      const msg = { op: "unsubscribe" };
      msg[KINDS[kind].unsubField] = drop;
      return this._request(msg).then(() => {
        drop.forEach((n) => { if (!this._subs[kind].has(n)) this._confirmed[kind].delete(n); });
      }, (err) => {
        if (err.code !== "disconnected") this._emit("error", err);
      });
    }

    _settleWaiters() {
      this._waiters = this._waiters.filter((w) => {
        w.names.forEach((n) => { if (this._confirmed[w.kind].has(n)) w.names.delete(n); });
        if (w.names.size > 0) return true;
        w.resolve();
        return false;
      });
    }

    // ------------------------------------------------------------------ watched keys

    /**
     * Watch Redis keys: Herald sends each key's value now and again after every change by any
     * Redis client. `keys` and `patterns` (globs, matched by Herald with SCAN and keyspace
     * notifications) are a name or a list; either may be empty. `handlers` is a function called
     * with every message of this watch, or an object with a method per message type:
     *   value     {type: "value", key, kind: "string"|"hash"|"set"|"zset"|"list"|"stream"|"none", value}
     *             (encoding: "base64" when a string of it is not UTF-8: Herald.valueBytes(msg);
     *             truncated: true and size instead of value over Herald's --max-watch-value;
     *             unsupported: true and no value for a module's type)
     *   deleted   {type: "deleted", key}      expired {type: "expired", key}
     *   watching  {type: "watching", keys, patterns}: every snapshot value of the watch was
     *             sent (again after a reconnect, and after a pattern's gap)
     *   gap       {type: "gap", kind: "watch", pattern, source}: drop what is held for the
     *             pattern's keys; fresh values follow, then "watching"
     *   unsubscribed {type: "unsubscribed", kind: "watch"|"watch_pattern", names, reason:
     *             "forbidden"}: a refreshed token no longer covers these names (dropped)
     *   error     a HeraldError (code, message, answer): Herald refused the watch
     *             (watch_unavailable, watch_too_broad, forbidden, reserved_name,
     *             too_many_subscriptions, overloaded: the watch is dropped) or could not read a
     *             key (answer.key; the watch goes on)
     * Values are state: a value may repeat, and a key watched twice gets its snapshot again.
     * Every value, deleted and expired message is also a "watch" event, every gap a "gap" event
     * and every error an "error" event. After a reconnect the watch is sent again.
     * Returns a function that stops this watch (a Promise, as unwatch()).
     */
    watch(keys, patterns, handlers) {
      const k = watchNames(keys, "keys");
      const p = watchNames(patterns, "patterns");
      if (k.length + p.length === 0) throw new TypeError("Herald.watch needs a key or a pattern");
      if (handlers !== undefined && typeof handlers !== "function" && (handlers === null || typeof handlers !== "object")) {
        throw new TypeError("Herald.watch: handlers must be a function or an object");
      }
      // One record per call: sent as its own op (again after a reconnect), so that Herald's
      // refusal of one watch leaves the others alone.
      const record = { keys: k, patterns: p, handlers: handlers || {}, id: null, stopped: false };
      addNames(this._watchKeys, k, record);
      addNames(this._watchPatterns, p, record);
      this._watchRecords.add(record);
      if (this._isOpen()) {
        this._watchQueue.push(record);
        this._pumpWatches();
      }
      return () => this._unwatch(k, p, (r) => r === record);
    }

    /**
     * Stop watching keys / patterns: with `handlers` only the watches made with them, else
     * every watch of those names; with no names at all, every watch. Herald is told once no
     * watch of a name is left. Resolves with Herald's answer ({type: "unwatched", keys,
     * patterns}), or at once when nothing needed telling.
     */
    unwatch(keys, patterns, handlers) {
      let k = watchNames(keys, "keys");
      let p = watchNames(patterns, "patterns");
      if (k.length + p.length === 0) ({ keys: k, patterns: p } = this.watching());
      return this._unwatch(k, p, handlers === undefined ? () => true : (r) => r.handlers === handlers);
    }

    _unwatch(keys, patterns, matches) {
      const gone = {
        keys: dropNames(this._watchKeys, keys, matches, (r, n) => { r.keys = r.keys.filter((x) => x !== n); }),
        patterns: dropNames(this._watchPatterns, patterns, matches, (r, n) => { r.patterns = r.patterns.filter((x) => x !== n); }),
      };
      this._forgetEmptyRecords();
      if ((gone.keys.length === 0 && gone.patterns.length === 0) || !this._isOpen()) return Promise.resolve(null);
      return this._request({ op: "unwatch", keys: gone.keys, patterns: gone.patterns }).catch((err) => {
        if (err.code !== "disconnected" && err.code !== "closed") this._emit("error", err);
        return null;
      });
    }

    /** Records left with no name are stopped (an answer still on its way is ignored). */
    _forgetEmptyRecords() {
      this._watchRecords.forEach((r) => {
        if (r.keys.length + r.patterns.length > 0) return;
        r.stopped = true;
        this._watchRecords.delete(r);
      });
      this._watchQueue = this._watchQueue.filter((r) => !r.stopped);
    }

    /** What is watched: {keys: [..], patterns: [..]}. */
    watching() {
      return { keys: Array.from(this._watchKeys.keys()), patterns: Array.from(this._watchPatterns.keys()) };
    }

    /**
     * Send queued watch ops, a few at a time: Herald refuses (overloaded) a connection's 17th
     * watch op still waiting on Redis, and after a reconnect every watch is sent again.
     */
    _pumpWatches() {
      while (this._isOpen() && this._watchQueue.length > 0 && this._watchInFlight.size < WATCH_WINDOW) {
        const record = this._watchQueue.shift();
        if (record.stopped) continue;
        record.id = this._nextId++;
        this._watchInFlight.set(record.id, record);
        this._send({ op: "watch", id: record.id, keys: record.keys, patterns: record.patterns });
      }
    }

    /** A new connection: every watch again; a pattern's keys deleted meanwhile are told by a gap. */
    _rewatchAll(reconnected) {
      this._watchQueue = Array.from(this._watchRecords);
      if (reconnected) {
        this._watchPatterns.forEach((records, pattern) => {
          this._watchGap({ type: "gap", kind: "watch", pattern: pattern, source: "reconnect" }, records);
        });
      }
      this._pumpWatches();
    }

    /** Connection gone: the ops on it are answered never. */
    _resetWatchOps() {
      this._watchInFlight.clear();
      this._watchQueue = [];
    }

    /** The records watching `key` (by name, or by a pattern it matches). */
    _recordsOf(key) {
      const records = new Set(this._watchKeys.get(key) || []);
      this._watchPatterns.forEach((set, pattern) => {
        if (globMatch(pattern, key)) set.forEach((r) => records.add(r));
      });
      return records;
    }

    _callWatch(record, type, arg) {
      const h = record.handlers;
      callHandler(this, typeof h === "function" ? h : h[type], arg);
    }

    /** value, deleted, expired. */
    _watched(msg) {
      if (typeof msg.key !== "string") return;
      const records = this._recordsOf(msg.key);
      if (records.size === 0) return; // unwatched meanwhile
      this._emit("watch", msg);
      records.forEach((r) => this._callWatch(r, msg.type, msg));
    }

    /** Herald's "watching": the answer to a watch op, or the end of a pattern's fresh values after its gap. */
    _watchingAnswer(msg) {
      if (msg.id !== undefined) {
        const record = this._watchInFlight.get(msg.id);
        if (!record) return;
        this._watchInFlight.delete(msg.id);
        if (!record.stopped) this._callWatch(record, "watching", msg);
        this._pumpWatches();
        return;
      }
      const records = new Set();
      listOf(msg.patterns).forEach((p) => (this._watchPatterns.get(p) || []).forEach((r) => records.add(r)));
      listOf(msg.keys).forEach((k) => (this._watchKeys.get(k) || []).forEach((r) => records.add(r)));
      records.forEach((r) => this._callWatch(r, "watching", msg));
    }

    /** A pattern's keys may have changed unseen: its watches drop what they hold for it. */
    _watchGap(gap, records) {
      if (!records || records.size === 0) return;
      this._emit("gap", gap);
      records.forEach((r) => this._callWatch(r, "gap", gap));
    }

    /** Herald refused a watch op: that watch is dropped (a retry is the application's call). */
    _watchFailed(record, err) {
      this._watchInFlight.delete(record.id);
      if (!record.stopped) {
        // Other watches of the same names stay: Herald still holds what an earlier op holds.
        dropNames(this._watchKeys, record.keys, (r) => r === record);
        dropNames(this._watchPatterns, record.patterns, (r) => r === record);
        record.stopped = true;
        this._watchRecords.delete(record);
        if (typeof record.handlers === "object") callHandler(this, record.handlers.error, err);
      }
      this._emit("error", err);
      this._pumpWatches();
    }

    /** A watched key could not be read ({"type":"error","key":..} without an id): its watches hear it. */
    _watchReadFailed(err) {
      this._recordsOf(err.answer.key).forEach((r) => {
        if (typeof r.handlers === "object") callHandler(this, r.handlers.error, err);
      });
      this._emit("error", err);
    }

    /** A refreshed token no longer covers these watches: Herald ended them; so do they here. */
    _watchRevoked(msg) {
      const names = listOf(msg.names);
      const map = msg.kind === "watch" ? this._watchKeys : this._watchPatterns;
      const records = new Set();
      names.forEach((n) => (map.get(n) || []).forEach((r) => records.add(r)));
      dropNames(map, names, () => true, (r, n) => {
        if (msg.kind === "watch") r.keys = r.keys.filter((x) => x !== n);
        else r.patterns = r.patterns.filter((x) => x !== n);
      });
      records.forEach((r) => this._callWatch(r, "unsubscribed", msg));
      this._forgetEmptyRecords();
    }

    // ------------------------------------------------------------------ requests

    /**
     * Publish over the socket (op "publish"). Resolves with Herald's answer
     * {type:"published", channel, receivers}; rejects with a HeraldError (code from Herald, or
     * "timeout" / "disconnected": the message may or may not have been published then).
     * Waits for the connection (within requestTimeout) when it is not open.
     *
     * options.idempotencyKey (a string of 1-128 printable ASCII characters), or
     * options.idempotent: true (a fresh random key): Herald publishes at most once per key, so a
     * publish whose connection dropped before the answer is sent again after the reconnect
     * instead of failing "disconnected" (the answer then carries replayed: true if the first
     * attempt had gone through).
     */
    publish(channel, message, options) {
      if (typeof channel !== "string" || channel === "") return Promise.reject(new TypeError("Herald.publish needs a channel"));
      const msg = { op: "publish", channel: channel, message: message === undefined ? null : message };
      if (options && options.sharded) msg.sharded = true;
      if (options && options.idempotencyKey !== undefined) msg.idempotency_key = String(options.idempotencyKey);
      else if (options && options.idempotent) msg.idempotency_key = newKey();
      return this._request(msg);
    }

    /**
     * Who is in a channel, on every Herald of this Redis: resolves with
     * {type:"presence", channel, clients, users, members:[{client, user, info, since}], truncated?}.
     */
    presence(channel) {
      if (typeof channel !== "string" || channel === "") return Promise.reject(new TypeError("Herald.presence needs a channel"));
      return this._request({ op: "presence", channel: channel });
    }

    /** Round trip to Herald; resolves with {type:"pong"}. */
    ping() {
      return this._request({ op: "ping" });
    }

    /** Send `msg` with a fresh id (now, or once the socket opens); settle on the answer with that id. */
    _request(msg) {
      if (this.state === "closed") return Promise.reject(new HeraldError("closed", "the client was closed"));
      const id = this._nextId++;
      msg.id = id;
      return new Promise((resolve, reject) => {
        const entry = { msg: msg, sent: false, resolve: resolve, reject: reject, timer: null };
        entry.timer = setTimeout(() => {
          this._pending.delete(id);
          reject(new HeraldError("timeout", "no answer from Herald within " + this.options.requestTimeout + " ms"));
        }, this.options.requestTimeout);
        this._pending.set(id, entry);
        if (this._isOpen()) {
          entry.sent = true;
          this._send(msg);
        }
      });
    }

    _send(msg) {
      this._ws.send(JSON.stringify(msg));
    }

    _answer(id, ok, value) {
      const p = this._pending.get(id);
      if (!p) return false;
      this._pending.delete(id);
      clearTimeout(p.timer);
      if (ok) p.resolve(value);
      else p.reject(value);
      return true;
    }

    // ------------------------------------------------------------------ connection

    /** Close for good: no reconnect; pending requests are rejected. */
    close() {
      this._closedByUser = true;
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      this._stopHeartbeat();
      if (root.removeEventListener) root.removeEventListener("online", this._onWake);
      if (root.document && root.document.removeEventListener) root.document.removeEventListener("visibilitychange", this._onWake);
      const ws = this._ws;
      this._ws = null;
      if (ws) {
        try { ws.close(1000, "client closed"); } catch (err) { /* already closing */ }
      }
      this._failPending("closed", "the client was closed", true);
      if (this._share) this._share.close();
      this._setState("closed", {});
    }

    /** Reconnect now if a reconnect is scheduled (e.g. after the network came back). */
    reconnectNow() {
      if (this._viaShare()) this._share.reconnectNow(); // the holder's WebSocket
      else if (this._reconnectTimer !== null) this._connect();
    }

    _wake() {
      if (root.document && root.document.visibilityState === "hidden") return;
      this.reconnectNow();
    }

    /** Whether connections go through the tab holding the share (not while it stopped answering). */
    _viaShare() {
      return Boolean(this._share) && !this._share.orphan;
    }

    _isOpen() {
      return Boolean(this._ws) && this._ws.readyState === 1 && this.state === "open";
    }

    _connect() {
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      if (this._closedByUser) return;
      const seq = (this._connectSeq = (this._connectSeq || 0) + 1);
      this._setState(this._everOpened || this.attempt > 0 ? "reconnecting" : "connecting", { attempt: this.attempt + 1 });
      const token = this.options.token;
      if (this._viaShare()) {
        // While the holder's WebSocket is down, its countdown is this client's too.
        const link = this._share.linkState;
        if (link && link.state === "reconnecting") this._setState("reconnecting", link.info);
        this._open(null); // the tab holding the share opens the WebSocket, with its own token
        return;
      }
      if (typeof token !== "function") {
        this._open(token);
        return;
      }
      Promise.resolve().then(token).then((value) => {
        if (seq === this._connectSeq && !this._closedByUser) this._open(value);
      }, (err) => {
        if (seq !== this._connectSeq || this._closedByUser) return;
        this._emit("error", err);
        this._scheduleReconnect({ code: 0, reason: "token: " + String(err && err.message) });
      });
    }

    _open(token) {
      const Impl = this.options.WebSocket || root.WebSocket;
      let url = this.url;
      const streams = this._streamQuery();
      if (streams) url += (url.indexOf("?") < 0 ? "?" : "&") + streams;
      if (token) url += (url.indexOf("?") < 0 ? "?" : "&") + "token=" + encodeURIComponent(String(token));
      if (this._ws) {
        const old = this._ws;
        this._ws = null;
        try { old.close(); } catch (err) { /* closing */ }
      }
      let ws;
      try {
        ws = this._viaShare() ? this._share.newSocket(url) : new Impl(url);
      } catch (err) {
        this._emit("error", err);
        this._scheduleReconnect({ code: 0, reason: String(err && err.message) });
        return;
      }
      this._ws = ws;
      ws.onopen = () => {
        if (ws !== this._ws) return;
        this._openedAt = Date.now();
        this._lastFrameAt = this._openedAt;
        Object.keys(KINDS).forEach((k) => this._confirmed[k].clear());
        const reconnected = this._everOpened;
        this._everOpened = true;
        this._setState("open", { reconnected: reconnected });
        this._resubscribeAll(reconnected);
        this._rewatchAll(reconnected);
        if (reconnected) this._streamGapsAfterReconnect();
        this._streams.forEach((entry) => { entry.connected = true; });
        this._pending.forEach((entry) => {
          if (!entry.sent) {
            entry.sent = true;
            this._send(entry.msg);
          }
        });
        this._emit("open", { reconnected: reconnected });
        this._startHeartbeat();
      };
      ws.onmessage = (ev) => {
        if (ws !== this._ws) return;
        this._lastFrameAt = Date.now();
        if (typeof ev.data === "string") this._onText(ev.data);
      };
      ws.onclose = (ev) => {
        if (ws !== this._ws) return;
        this._ws = null;
        this._stopHeartbeat();
        Object.keys(KINDS).forEach((k) => this._confirmed[k].clear());
        if (this._openedAt && Date.now() - this._openedAt >= this.options.stableAfter) this.attempt = 0;
        this._openedAt = 0;
        this._failPending("disconnected", "the connection closed before Herald answered", false);
        this._subRequests.clear();
        this._gapAfter.clear();
        this._resetWatchOps();
        const info = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean };
        this._emit("close", info);
        this._scheduleReconnect(info);
      };
      // A "close" event follows an error in browsers; some implementations skip it when the
      // connection never opened, so make sure the loss is handled once.
      const lost = (code, reason) => {
        if (ws !== this._ws) return;
        try { ws.close(); } catch (err) { /* not open */ }
        ws.onclose({ code: code, reason: reason, wasClean: false });
      };
      ws.onerror = () => {
        setTimeout(() => { if (ws.readyState === 3) lost(1006, "connection failed"); }, 50);
      };
      // A connection attempt that hangs (a black-holed address) is given up after connectTimeout.
      setTimeout(() => { if (ws.readyState === 0) lost(1006, "connection timed out"); }, this.options.connectTimeout);
    }

    _scheduleReconnect(info) {
      if (this._closedByUser) return;
      if (!this.options.reconnect) {
        this._setState("closed", info);
        return;
      }
      // Exponential backoff with jitter: a random delay in [exp/2, exp], so that the clients of
      // a restarted Herald do not all come back in the same millisecond.
      const exp = Math.min(this.options.maxDelay, this.options.minDelay * Math.pow(2, this.attempt));
      // A shared connection is paced by the tab holding it (the new attempt waits there until
      // its WebSocket is open): come back at once, to be in the holder's next connection.
      const delay = this._viaShare() ? SHARED.retry : Math.round(exp / 2 + Math.random() * (exp / 2));
      this.attempt += 1;
      this._reconnectTimer = setTimeout(() => this._connect(), delay);
      this._setState("reconnecting", Object.assign({ attempt: this.attempt, delay: delay, retryAt: Date.now() + delay }, info));
    }

    /** Reject the requests sent on a lost connection (all of them when `all`); unsent ones wait. */
    _failPending(code, text, all) {
      this._pending.forEach((entry, id) => {
        if (!all && !entry.sent) return;
        // A publish with an idempotency key is safe to send again: it waits for the reconnect.
        if (!all && entry.msg.idempotency_key !== undefined) {
          entry.sent = false;
          return;
        }
        this._pending.delete(id);
        clearTimeout(entry.timer);
        entry.reject(new HeraldError(code, text));
      });
    }

    _resubscribeAll(reconnected) {
      Object.keys(KINDS).forEach((kind) => {
        const names = Array.from(this._subs[kind].keys());
        if (names.length > 0) this._sendSubscribe(kind, names, null, reconnected);
      });
    }

    _startHeartbeat() {
      this._stopHeartbeat();
      const every = this.options.heartbeat;
      if (!every) return;
      const tick = () => {
        if (!this._isOpen()) return;
        if (Date.now() - this._lastFrameAt >= every) {
          const ws = this._ws;
          this.ping().catch((err) => {
            // No pong: the link is dead even if the socket does not know it yet.
            if (err.code === "timeout" && ws === this._ws) {
              try { ws.close(4000, "heartbeat timeout"); } catch (e) { /* closing */ }
              if (ws.onclose) ws.onclose({ code: 4000, reason: "heartbeat timeout", wasClean: false });
            }
          });
        }
        this._heartbeatTimer = setTimeout(tick, Math.max(1000, Math.floor(every / 2)));
      };
      this._heartbeatTimer = setTimeout(tick, Math.max(1000, Math.floor(every / 2)));
    }

    _stopHeartbeat() {
      clearTimeout(this._heartbeatTimer);
      this._heartbeatTimer = null;
    }

    // ------------------------------------------------------------------ incoming

    _onText(text) {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (err) {
        this._emit("error", new HeraldError("bad_frame", "a frame from Herald is not JSON"));
        return;
      }
      if (!msg || typeof msg !== "object") return;
      switch (msg.type) {
        case "message":
        case "pmessage":
        case "smessage":
          this._deliver(msg);
          break;
        case "subscribed": {
          const kind = msg.kind;
          const names = Array.isArray(msg.names) ? msg.names : [];
          if (!this._confirmed[kind]) break;
          names.forEach((n) => { if (this._subs[kind].has(n)) this._confirmed[kind].add(n); });
          this._settleWaiters();
          this._subRequests.delete(msg.id);
          this._emit("subscribed", { kind: kind, names: names });
          if (this._gapAfter.delete(msg.id)) {
            names.forEach((n) => {
              if (this._subs[kind].has(n)) this._emit("gap", this._gap(kind, n, "reconnect"));
            });
          }
          break;
        }
        case "unsubscribed":
          if (msg.kind === "watch" || msg.kind === "watch_pattern") this._watchRevoked(msg);
          else if (msg.reason === "forbidden") this._revoked(msg);
          this._emit("unsubscribed", { kind: msg.kind, names: msg.names || [], reason: msg.reason });
          if (msg.id !== undefined) this._answer(msg.id, true, msg);
          break;
        case "entry":
          this._entry(msg);
          break;
        case "value":
        case "deleted":
        case "expired":
          this._watched(msg);
          break;
        case "watching":
          this._watchingAnswer(msg);
          break;
        case "gap": {
          if (msg.kind === "watch") {
            this._watchGap({ type: "gap", kind: "watch", pattern: msg.pattern, source: "herald" }, this._watchPatterns.get(msg.pattern));
            break;
          }
          if (typeof msg.stream === "string") {
            this._emit("gap", Object.assign({ kind: "stream", source: "herald" }, msg));
            break;
          }
          const kind = msg.kind || "channel";
          const name = kind === "pattern" ? msg.pattern : msg.channel;
          this._emit("gap", this._gap(kind, name, "herald"));
          break;
        }
        case "dropped":
          this._emit("dropped", { count: msg.count });
          break;
        case "token_expiring":
          this._emit("token_expiring", { in: msg.in });
          this._refreshToken();
          break;
        case "join":
        case "leave":
          if (this._presence.has(msg.channel)) this._emit(msg.type, msg);
          break;
        case "error": {
          const err = new HeraldError(msg.code || "error", msg.message, msg);
          const request = msg.id !== undefined ? this._subRequests.get(msg.id) : undefined;
          const watch = msg.id !== undefined ? this._watchInFlight.get(msg.id) : undefined;
          if (watch) {
            this._watchFailed(watch, err);
          } else if (msg.id === undefined && typeof msg.key === "string") {
            this._watchReadFailed(err);
          } else if (request) {
            this._subRequests.delete(msg.id);
            this._gapAfter.delete(msg.id);
            this._subscribeFailed(request, err);
          } else if (msg.id === undefined || !this._answer(msg.id, false, err)) {
            this._emit("error", err);
          }
          break;
        }
        default:
          if (msg.id !== undefined) this._answer(msg.id, true, msg); // published, pong, newer answers
          else this._emit("notice", msg);
      }
    }

    /**
     * Herald warned that the token runs out: call the `token` function again and send what it
     * gives in a refresh op on this connection. Emits "refreshed" ({type, exp}) or "error". A
     * fixed token cannot be renewed: Herald closes at `exp` (1008) and the reconnect fails
     * until the page gives a new token.
     */
    _refreshToken() {
      const token = this.options.token;
      if (typeof token !== "function") return;
      const ws = this._ws;
      Promise.resolve().then(token).then((value) => {
        // Reconnected meanwhile: the new connection was opened with a fresh token already.
        if (ws !== this._ws || !this._isOpen()) return;
        return this._request({ op: "refresh", token: String(value) }).then((answer) => this._emit("refreshed", answer));
      }).catch((err) => this._emit("error", err));
    }

    /** Herald ended subscriptions a refreshed token no longer covers: forget them (no resubscribe). */
    _revoked(msg) {
      const names = Array.isArray(msg.names) ? msg.names : [];
      if (msg.kind === "stream") {
        names.forEach((n) => this._streams.delete(n));
        return;
      }
      if (!this._subs[msg.kind]) return;
      names.forEach((n) => {
        this._subs[msg.kind].delete(n);
        this._confirmed[msg.kind].delete(n);
      });
    }

    _gap(kind, name, source) {
      const gap = { type: "gap", kind: kind, source: source };
      if (kind === "pattern") gap.pattern = name;
      else gap.channel = name;
      return gap;
    }

    _entry(msg) {
      const entry = this._streams.get(msg.stream);
      if (!entry || typeof msg.id !== "string") return;
      if (entry.lastId && compareIds(msg.id, entry.lastId) <= 0) return; // already handed over
      if (!entry.lastId && entry.floor && compareKeys(idKey(msg.id), entry.floor) <= 0) return; // before its `from`
      entry.lastId = msg.id;
      this._emit("entry", msg);
      Array.from(entry.handlers).forEach((fn) => {
        try {
          fn.call(this, msg);
        } catch (err) {
          setTimeout(() => { throw err; });
        }
      });
    }

    _deliver(msg) {
      const kind = KIND_OF_DELIVERY[msg.type];
      const key = kind === "pattern" ? msg.pattern : msg.channel;
      const handlers = this._subs[kind] && this._subs[kind].get(key);
      if (!handlers) return; // unsubscribed meanwhile
      this._emit("message", msg);
      Array.from(handlers).forEach((fn) => {
        try {
          fn.call(this, msg);
        } catch (err) {
          setTimeout(() => { throw err; });
        }
      });
    }
  }

  // ==================================================================== shared connection
  //
  // With {shared: true} the tabs of one browser that use the same url (and credential) share one
  // WebSocket. Every tab's Herald runs as usual, but its "socket" is a VirtualSocket: the frames
  // it sends go over a BroadcastChannel to the tab holding the share (elected with a Web Lock),
  // whose SharedHub holds the real WebSocket (a Herald of its own, the "link"), counts the
  // subscriptions of all tabs, and sends each tab only the frames meant for it. A tab's own
  // reconnect logic thus does everything a reconnect needs (resubscribe, "gap" events, streams
  // resumed after the last id it delivered, idempotent publishes sent again) when the holder
  // goes away and another tab takes the lock.
  //
  // Messages on the channel, {t, ...}: tab → holder: who, attach {tab, sock, url}, up {tab,
  // sock, data}, detach {tab, sock}, bye {tab}; holder → tabs: holder {holder, tabs} (also the
  // answer to who), beat (the same, every second), open {to, sock}, frame {to: ["tab:sock"..],
  // data}, close {to, sock, code, reason}. Messages for another holder are ignored.

  const SHARED = {
    beat: 1000, // ms between the holder's heartbeats
    probe: 3000, // ms of holder silence before a tab asks "who" (answered at once if it lives)
    dead: 5000, // ms of holder silence after which a tab gives up on it
    gather: 150, // ms a holder taking over waits for the tabs to attach before opening the WebSocket
    gatherFirst: 20, // the same for the first holder (its own tab attaches within this)
    retry: 20, // ms before a tab's Herald attaches again after its shared socket closed
    reopen: 30, // ms to gather stream changes into one reopen of the WebSocket
    buffer: 10000, // stream entries kept for a tab between two of its sockets
    answerTtl: 60000, // ms an id of a forwarded op is kept for its answer
  };

  /** What shared mode needs and this browser lacks, or "" when it has everything. */
  function sharingMissing() {
    if (typeof root.BroadcastChannel !== "function") return "BroadcastChannel";
    const nav = root.navigator;
    if (!nav || !nav.locks || typeof nav.locks.request !== "function") return "navigator.locks";
    return "";
  }

  /** FNV-1a of a string, as 8 hex digits: a credential in a lock name without the credential. */
  function fnv1a(text) {
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h.toString(16).padStart(8, "0");
  }

  /** Name of the lock and channel of a share: locks and channels are per origin already. */
  function shareName(url, options) {
    let key = options.sharedKey;
    if (key === null || key === undefined) key = typeof options.token === "string" ? "token-" + fnv1a(options.token) : "";
    return "herald-shared " + url + (key ? " " + String(key) : "");
  }

  /** A stream position key as the text of `from` ([ms, -1] is a time, else an id). */
  function positionText(key) {
    return key[1] < 0 ? String(key[0]) : key[0] + "-" + key[1];
  }

  /** The streams a socket url asks for: {keys: [..], from: position key or null for "$"}. */
  function streamsOfUrl(url) {
    const q = new URL(url).searchParams;
    const pos = positionOf(q.get("from") || "$");
    return { keys: q.getAll("stream"), from: pos ? pos.key : null };
  }

  /** Looks like a WebSocket to Herald; its frames go through the tab holding the share. */
  class VirtualSocket {
    constructor(tab, url, sid) {
      this.tab = tab;
      this.url = url;
      this.sid = sid; // this socket's number in its tab
      this.holder = null; // id of the tab it attached to
      this.readyState = 0; // 0 connecting, 1 open, 3 closed (as WebSocket)
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
    }

    send(text) {
      if (this.readyState !== 1) throw new Error("Herald: the shared socket is not open");
      this.tab.post({ t: "up", holder: this.holder, tab: this.tab.id, sock: this.sid, data: text });
    }

    /** Closed by its Herald (which handles the close itself, so no close event here). */
    close() {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.tab.detach(this);
    }

    _opened() {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      if (this.onopen) this.onopen({});
    }

    _frame(data) {
      if (this.readyState === 1 && this.onmessage) this.onmessage({ data: data });
    }

    _lost(code, reason) {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.tab.forget(this);
      if (this.onclose) this.onclose({ code: code, reason: reason, wasClean: false });
    }
  }

  /**
   * One Herald's side of a share: finds the holder, carries its sockets' frames, watches the
   * holder's heartbeat, and queues for the lock so as to hold the share when its turn comes.
   */
  class SharedTab {
    constructor(client) {
      this.client = client;
      this.id = newKey(); // this Herald's id among the tabs (a page may hold several Heralds)
      this.name = shareName(client.url, client.options);
      this.holder = null; // id of the holding tab as last heard
      this.tabs = null; // how many Heralds share the connection (from the holder's heartbeat)
      this.heardAt = 0; // ms (Date.now) the holder was last heard from
      this.probedAt = 0; // ms a "who" was sent because the holder was silent; 0: none
      this.socket = null; // the VirtualSocket of the client's current connection
      this.hub = null; // a SharedHub while this tab holds the share
      this.linkState = null; // {state, info} of the holder's WebSocket, as last heard
      this.nextSid = 1;
      this.isReady = false; // this tab's own lock is held: it may attach
      this.orphan = false; // the holder stopped answering: the client connects on its own
      this.closed = false;
      this.channel = new root.BroadcastChannel(this.name);
      this.channel.onmessage = (ev) => this._onMessage(ev.data);
      this.abort = typeof root.AbortController === "function" ? new root.AbortController() : null;
      const locks = root.navigator.locks;
      const opts = this.abort ? { signal: this.abort.signal } : {};
      // A lock per tab, held for its life: the holder asks for it too and is granted it when the
      // tab is gone (closed or crashed), so a dead tab's subscriptions are dropped.
      this.ready = new Promise((resolve) => {
        locks.request(this.name + " tab " + this.id, opts, () => {
          this.isReady = true;
          resolve();
          return new Promise((release) => { this.releaseTab = release; });
        }).catch(() => {});
      });
      this.ready.then(() => {
        if (this.closed) return;
        locks.request(this.name, opts, () => this._hold()).catch(() => {});
        this.post({ t: "who" });
      });
      this.watchdog = setInterval(() => this._checkHolder(), SHARED.beat);
      client.shared = { mode: "waiting", tab: this.id, holder: null, tabs: null };
    }

    post(msg) {
      if (!this.closed) this.channel.postMessage(msg);
    }

    /** A new socket for the client's next connection attempt. */
    newSocket(url) {
      const socket = new VirtualSocket(this, url, this.nextSid++);
      this.socket = socket;
      this.ready.then(() => this._attach(socket));
      return socket;
    }

    _attach(socket) {
      if (!this.isReady || this.closed || this.socket !== socket || socket.readyState !== 0 || socket.holder) return;
      if (!this.holder) {
        this.post({ t: "who" }); // attached when the holder answers
        return;
      }
      socket.holder = this.holder;
      this.post({ t: "attach", holder: this.holder, tab: this.id, sock: socket.sid, url: socket.url });
    }

    detach(socket) {
      if (socket.holder) this.post({ t: "detach", holder: socket.holder, tab: this.id, sock: socket.sid });
      this.forget(socket);
    }

    forget(socket) {
      if (this.socket === socket) this.socket = null;
    }

    /** The lock is ours: hold the share until this client closes (or the tab goes). */
    _hold() {
      if (this.closed) return undefined;
      return new Promise((release) => {
        this.releaseHolder = release;
        // Taking over from another tab: give its tabs time to attach, so that one WebSocket
        // opens for all of them (each one later may make it reopen for its streams).
        this.hub = new SharedHub(this.name, this.id, this.client, this.holder ? SHARED.gather : SHARED.gatherFirst);
      });
    }

    _onMessage(m) {
      if (!m || typeof m !== "object") return;
      const socket = this.socket;
      switch (m.t) {
        case "holder":
        case "beat":
          this._heard(m.holder, m.tabs);
          this._link(m.link);
          break;
        case "link":
          if (m.holder === this.holder) this._link(m.link);
          break;
        case "event":
          if (m.holder === this.holder) this.client._emit(m.name, m.arg);
          break;
        case "open":
          if (socket && m.to === this.id && m.sock === socket.sid && socket.holder === m.holder) socket._opened();
          break;
        case "frame":
          if (socket && socket.holder === m.holder && m.to.indexOf(this.id + ":" + socket.sid) >= 0) socket._frame(m.data);
          break;
        case "close":
          if (socket && m.to === this.id && m.sock === socket.sid && socket.holder === m.holder) socket._lost(m.code, m.reason);
          break;
        default: // the holder's messages
      }
    }

    /** The holder's WebSocket changed state: a client waiting for it shows the holder's countdown. */
    _link(link) {
      if (!link) return;
      const was = this.linkState;
      this.linkState = link;
      const client = this.client;
      if (link.state !== "reconnecting" || client.state === "open" || client.state === "closed") return;
      if (!was || was.state !== link.state || was.info.retryAt !== link.info.retryAt) client._setState("reconnecting", link.info);
    }

    reconnectNow() {
      if (this.holder) this.post({ t: "reconnect", holder: this.holder });
    }

    _heard(holder, tabs) {
      this.heardAt = Date.now();
      this.probedAt = 0;
      if (this.orphan) {
        // A holder answers again: leave the connection of our own for the shared one.
        this.orphan = false;
        this.holder = holder;
        this.tabs = tabs;
        this._report();
        this.client._reopen();
        return;
      }
      const changed = holder !== this.holder || tabs !== this.tabs;
      this.holder = holder;
      this.tabs = tabs;
      const socket = this.socket;
      if (socket && socket.holder && socket.holder !== holder) {
        socket._lost(1006, "the tab holding the shared connection went away");
      } else if (socket && !socket.holder) {
        this._attach(socket);
      }
      if (changed) this._report();
    }

    /** A holder that went silent is asked; one that stays silent is given up. */
    _checkHolder() {
      if (!this.holder || this.hub) return;
      const silent = Date.now() - this.heardAt;
      if (silent >= SHARED.dead && this.probedAt) {
        // It holds the lock but does not answer (its page hangs): connect on our own until a
        // holder answers again.
        this.holder = null;
        this.tabs = null;
        this.orphan = true;
        this._report();
        const socket = this.socket;
        if (socket) socket._lost(1006, "the tab holding the shared connection stopped answering");
        else this.client._reopen();
        this.post({ t: "who" });
      } else if (silent >= SHARED.probe && !this.probedAt) {
        this.probedAt = Date.now();
        this.post({ t: "who" });
      }
    }

    _report() {
      const mode = this.orphan ? "fallback" : !this.holder ? "waiting" : this.holder === this.id ? "holder" : "via";
      this.client.shared = { mode: mode, tab: this.id, holder: this.holder, tabs: this.tabs };
      if (this.orphan) this.client.shared.reason = "the tab holding the shared connection stopped answering";
      this.client._emit("shared", this.client.shared);
    }

    close() {
      if (this.closed) return;
      this.post({ t: "bye", holder: this.holder, tab: this.id });
      this.closed = true;
      clearInterval(this.watchdog);
      if (this.hub) this.hub.stop();
      this.hub = null;
      if (this.abort) this.abort.abort();
      if (this.releaseHolder) this.releaseHolder();
      if (this.releaseTab) this.releaseTab();
      this.channel.close();
    }
  }

  /** A Herald whose streams and incoming frames are its hub's: the holder's real WebSocket. */
  class SharedLink extends Herald {
    _streamQuery() {
      return this.options.hub.streamQuery();
    }

    _onText(text) {
      this.options.hub.fromServer(text);
    }
  }

  /**
   * The holding tab's side: the real WebSocket (a SharedLink) and, per attached Herald (a
   * "registration"), what it subscribed, watches and reads, so that each frame from Herald goes
   * to the tabs that want it, once per subscription on Herald's side.
   */
  class SharedHub {
    constructor(name, id, client, gather) {
      this.id = id;
      this.client = client;
      this.name = name;
      this.regs = new Map(); // tab id → registration (see _register)
      this.link = null; // the SharedLink, made after SHARED.gather
      this.linkStreams = new Set(); // streams the current WebSocket reads
      this.linkFrom = null; // its `from` as a position key; null: "$"
      this.lastSeen = new Map(); // stream → key of the last entry on the current WebSocket
      this.reopenTimer = null;
      this.linkInfo = null; // info of the link's last "state" event
      this.stopped = false;
      this.abort = typeof root.AbortController === "function" ? new root.AbortController() : null;
      this._resetLink();
      this.channel = new root.BroadcastChannel(name);
      this.channel.onmessage = (ev) => this._onMessage(ev.data);
      this._announce("holder");
      this.beatTimer = setInterval(() => { this._announce("beat"); this._expireAnswers(); }, SHARED.beat);
      this.startTimer = setTimeout(() => this._start(), gather);
    }

    /** Forget what the WebSocket held: it is gone (or about to be replaced). */
    _resetLink() {
      this.confirmed = new Set(); // "kind:name" subscribed on the WebSocket
      this.joined = new Set(); // channels whose presence the WebSocket joined
      this.inflight = new Map(); // "kind:name" → {id, presence} of a subscribe op sent
      this.realSubs = new Map(); // id → {kind, names, presence} of the hub's subscribe ops
      this.waiters = []; // a tab's subscribe op waiting for its names: {reg, sock, id, kind, names, presence}
      this.answers = new Map(); // id on the WebSocket → {tab, sock, id, at, watch} of a forwarded op
      this.ownIds = new Set(); // ids of the hub's own unsubscribe and unwatch ops (answers dropped)
      this.watchQueue = []; // tabs' watch ops waiting for room (WATCH_WINDOW): {reg, sock, msg}
      this.watchesInFlight = 0; // tabs' watch ops sent and not answered yet
    }

    _start() {
      const options = Object.assign({}, this.client.options, { shared: false, reconnect: true, hub: this });
      this.link = new SharedLink(this.client.url, options);
      this.link.on("open", () => this.regs.forEach((reg) => { if (reg.sock !== null) this._openReg(reg); }));
      this.link.on("close", (info) => this._closeAll(info.code, info.reason));
      // The holder renews the token on its WebSocket; every tab hears of it.
      ["token_expiring", "refreshed"].forEach((name) => {
        this.link.on(name, (arg) => this._post({ t: "event", name: name, arg: arg }));
      });
      this.link.on("state", (state, info) => {
        this.linkInfo = JSON.parse(JSON.stringify(info || {}));
        this._post({ t: "link", link: this._linkState() });
      });
    }

    stop() {
      if (this.stopped) return;
      clearInterval(this.beatTimer);
      clearTimeout(this.startTimer);
      clearTimeout(this.reopenTimer);
      this._closeAll(1001, "the tab holding the shared connection closed it");
      if (this.link) this.link.close();
      this.stopped = true;
      if (this.abort) this.abort.abort();
      this.channel.close();
    }

    _post(msg) {
      if (this.stopped) return;
      msg.holder = this.id;
      this.channel.postMessage(msg);
    }

    _announce(t) {
      this._post({ t: t, tabs: this.regs.size, link: this._linkState() });
    }

    _linkState() {
      if (!this.link) return null;
      return { state: this.link.state, info: this.linkInfo || {} };
    }

    _linkOpen() {
      return Boolean(this.link) && this.link._isOpen();
    }

    _sendReal(msg) {
      if (this._linkOpen()) this.link._send(msg);
    }

    _realId() {
      return this.link._nextId++;
    }

    // ---------------------------------------------------------------- tabs

    _onMessage(m) {
      if (!m || typeof m !== "object") return;
      if (m.t === "who") {
        this._announce("holder");
        return;
      }
      if (m.holder !== this.id) return; // for an earlier holder
      switch (m.t) {
        case "attach": this._attach(m.tab, m.sock, m.url); break;
        case "up": this._up(m.tab, m.sock, m.data); break;
        case "detach": {
          const reg = this.regs.get(m.tab);
          if (reg && reg.sock === m.sock) this._detach(reg);
          break;
        }
        case "bye": this._drop(m.tab); break;
        case "reconnect": if (this.link) this.link.reconnectNow(); break;
        default:
      }
    }

    _register(tab) {
      const reg = {
        tab: tab,
        sock: null, // its current socket's number; null between two sockets
        open: false, // whether that socket was told "open"
        streams: new Map(), // stream → key of the last entry sent (or its `from`); null: "$"
        buffer: [], // entry frames kept for it between two sockets
        subs: { channel: new Set(), pattern: new Set(), shard: new Set() },
        presence: new Set(), // channels it joined the presence of
        watchKeys: new Map(), // watched key → how many of its watch ops (sent, queued, not refused) hold it
        watchPatterns: new Map(), // watched glob → the same
      };
      this.regs.set(tab, reg);
      // Granted once the tab is gone, closed or crashed: its subscriptions go too.
      const opts = this.abort ? { signal: this.abort.signal } : {};
      root.navigator.locks.request(this.name + " tab " + tab, opts, () => this._drop(tab)).catch(() => {});
      this._announce("holder");
      return reg;
    }

    _attach(tab, sock, url) {
      const reg = this.regs.get(tab) || this._register(tab);
      if (reg.sock !== null) this._detach(reg);
      reg.sock = sock;
      reg.open = false;
      // A stream it read before goes on from where the hub left it (entries meanwhile are in
      // its buffer); a new one from the socket's `from`, which the WebSocket may have passed.
      const wanted = streamsOfUrl(url);
      const streams = new Map();
      let servable = true;
      wanted.keys.forEach((key) => {
        if (reg.streams.has(key)) {
          streams.set(key, reg.streams.get(key));
        } else if (wanted.from === null && this.lastSeen.has(key)) {
          streams.set(key, this.lastSeen.get(key)); // "$": after what the WebSocket last brought
        } else {
          streams.set(key, wanted.from);
          if (!this._canServe(key, wanted.from)) servable = false;
        }
      });
      reg.streams = streams;
      reg.buffer = reg.buffer.filter((b) => streams.has(b.stream));
      if (!servable) this._scheduleReopen();
      else if (this._linkOpen()) this._openReg(reg);
    }

    /** Whether the current WebSocket still brings every entry of `stream` after `pos`. */
    _canServe(stream, pos) {
      if (!this.link || !this.link._ws) return true; // the next one is opened for every tab
      if (!this.linkStreams.has(stream)) return false;
      if (pos === null) return true; // "$": only what comes from now on
      const seen = this.lastSeen.get(stream);
      if (seen) return compareKeys(pos, seen) >= 0;
      return this.linkFrom !== null && compareKeys(pos, this.linkFrom) >= 0;
    }

    _openReg(reg) {
      if (reg.open || reg.sock === null) return;
      reg.open = true;
      this._post({ t: "open", to: reg.tab, sock: reg.sock });
      const to = [reg.tab + ":" + reg.sock];
      reg.buffer.forEach((b) => this._post({ t: "frame", to: to, data: b.data }));
      reg.buffer = [];
    }

    /** Its socket closed (its Herald reopens, or the hub closed it): release what it held. */
    _detach(reg) {
      this._release(reg);
      reg.sock = null;
      reg.open = false;
    }

    _drop(tab) {
      const reg = this.regs.get(tab);
      if (!reg) return;
      this._release(reg);
      this.regs.delete(tab);
      this._announce("holder");
    }

    _release(reg) {
      this.waiters = this.waiters.filter((w) => w.reg !== reg);
      const drop = {};
      Object.keys(KINDS).forEach((kind) => {
        drop[kind] = Array.from(reg.subs[kind]);
        reg.subs[kind].clear();
      });
      reg.presence.clear();
      this._unsubscribeUnwanted(drop);
      const keys = Array.from(reg.watchKeys.keys());
      const patterns = Array.from(reg.watchPatterns.keys());
      reg.watchKeys.clear();
      reg.watchPatterns.clear();
      this._unwatchUnwanted(keys, patterns);
    }

    /** Close every open tab socket (their Heralds reconnect, to this hub's next WebSocket). */
    _closeAll(code, reason) {
      this.regs.forEach((reg) => {
        if (!reg.open) return;
        this._post({ t: "close", to: reg.tab, sock: reg.sock, code: code, reason: reason });
        reg.sock = null;
        reg.open = false;
        Object.keys(KINDS).forEach((kind) => reg.subs[kind].clear());
        reg.presence.clear();
        reg.watchKeys.clear();
        reg.watchPatterns.clear();
      });
      this._resetLink();
    }

    /** A tab needs entries the WebSocket has passed (or a stream it does not read): reopen it from the oldest position any tab needs. */
    _scheduleReopen() {
      if (this.reopenTimer !== null || !this.link) return;
      this.reopenTimer = setTimeout(() => {
        this.reopenTimer = null;
        this._closeAll(1012, "the shared connection reopened for a stream");
        this.link._reopen();
      }, SHARED.reopen);
    }

    /** The streams query of the next WebSocket: every tab's streams, from the oldest position any tab needs. */
    streamQuery() {
      const keys = new Set();
      let oldest = null;
      this.regs.forEach((reg) => reg.streams.forEach((pos, key) => {
        keys.add(key);
        if (pos && (!oldest || compareKeys(pos, oldest) < 0)) oldest = pos;
      }));
      this.linkStreams = keys;
      this.linkFrom = oldest;
      this.lastSeen = new Map();
      if (keys.size === 0) return "";
      const parts = Array.from(keys).map((k) => "stream=" + encodeURIComponent(k));
      parts.push("from=" + encodeURIComponent(oldest ? positionText(oldest) : "$"));
      return parts.join("&");
    }

    // ---------------------------------------------------------------- a tab's op

    _up(tab, sock, text) {
      const reg = this.regs.get(tab);
      if (!reg || reg.sock !== sock || !reg.open || !this._linkOpen()) return;
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (err) {
        return;
      }
      if (!msg || typeof msg !== "object") return;
      switch (msg.op) {
        case "subscribe": this._subscribe(reg, msg, "channel"); break;
        case "psubscribe": this._subscribe(reg, msg, "pattern"); break;
        case "ssubscribe": this._subscribe(reg, msg, "shard"); break;
        case "unsubscribe": this._unsubscribe(reg, msg); break;
        case "watch":
          // Always sent, even for names watched already: Herald sends this tab its snapshot.
          countNames(reg.watchKeys, listOf(msg.keys), 1);
          countNames(reg.watchPatterns, listOf(msg.patterns), 1);
          this.watchQueue.push({ reg: reg, sock: reg.sock, msg: msg });
          this._pumpWatches();
          break;
        case "unwatch": this._unwatch(reg, msg); break;
        default:
          this._forward(reg, msg); // publish, presence, ping, …: the answer goes back by id
      }
    }

    _forward(reg, msg) {
      if (msg.id !== undefined || msg.op === "watch") {
        const id = this._realId();
        const watch = msg.op === "watch" ? { keys: listOf(msg.keys), patterns: listOf(msg.patterns) } : null;
        this.answers.set(id, { tab: reg.tab, sock: reg.sock, id: msg.id, at: Date.now(), watch: watch });
        msg.id = id;
      }
      this._sendReal(msg);
    }

    _expireAnswers() {
      const old = Date.now() - SHARED.answerTtl;
      this.answers.forEach((a, id) => {
        if (a.at >= old) return;
        this.answers.delete(id);
        if (a.watch) this.watchesInFlight -= 1;
      });
      this._pumpWatches();
    }

    /** Forward queued watch ops while fewer than WATCH_WINDOW wait on Herald (it refuses a connection's 17th). */
    _pumpWatches() {
      while (this._linkOpen() && this.watchQueue.length > 0 && this.watchesInFlight < WATCH_WINDOW) {
        const { reg, sock, msg } = this.watchQueue.shift();
        if (this.regs.get(reg.tab) !== reg || reg.sock !== sock || !reg.open) continue;
        // Names the tab stopped watching while the op waited are left out.
        msg.keys = listOf(msg.keys).filter((k) => reg.watchKeys.has(k));
        msg.patterns = listOf(msg.patterns).filter((p) => reg.watchPatterns.has(p));
        if (msg.keys.length + msg.patterns.length === 0) {
          this._toReg(reg, sock, JSON.stringify({ type: "watching", keys: [], patterns: [], id: msg.id }));
          continue;
        }
        this.watchesInFlight += 1;
        this._forward(reg, msg);
      }
    }

    /** A tab's unwatch (no names: all of its watches): answered here; Herald is told of names no tab watches any more. */
    _unwatch(reg, msg) {
      let keys = listOf(msg.keys);
      let patterns = listOf(msg.patterns);
      if (keys.length + patterns.length === 0) {
        keys = Array.from(reg.watchKeys.keys());
        patterns = Array.from(reg.watchPatterns.keys());
      }
      keys = keys.filter((k) => reg.watchKeys.delete(k));
      patterns = patterns.filter((p) => reg.watchPatterns.delete(p));
      this._unwatchUnwanted(keys, patterns);
      if (msg.id !== undefined) this._toReg(reg, reg.sock, JSON.stringify({ type: "unwatched", keys: keys, patterns: patterns, id: msg.id }));
    }

    _subscribe(reg, msg, kind) {
      const names = listOf(kind === "pattern" ? (msg.patterns || msg.pattern) : (msg.channels || msg.channel));
      const presence = kind === "channel" && msg.presence === true;
      names.forEach((n) => {
        reg.subs[kind].add(n);
        if (presence) reg.presence.add(n);
      });
      const need = names.filter((n) => !this._covered(kind, n, presence));
      this.waiters.push({ reg: reg, sock: reg.sock, id: msg.id, kind: kind, names: names, presence: presence });
      if (need.length > 0) {
        const id = this._realId();
        const op = { op: KINDS[kind].sub, id: id };
        op[KINDS[kind].subField] = need;
        if (presence) op.presence = true;
        this.realSubs.set(id, { kind: kind, names: need, presence: presence });
        need.forEach((n) => this.inflight.set(kind + ":" + n, { id: id, presence: presence }));
        this._sendReal(op);
      }
      this._settle();
    }

    /** Subscribed on the WebSocket (or asked), with presence joined when `presence`. */
    _covered(kind, name, presence) {
      const k = kind + ":" + name;
      if (this.confirmed.has(k) && (!presence || this.joined.has(name))) return true;
      const asked = this.inflight.get(k);
      return Boolean(asked) && (!presence || asked.presence);
    }

    /** Answer each waiting subscribe op whose names are all confirmed. */
    _settle() {
      this.waiters = this.waiters.filter((w) => {
        const done = w.names.every((n) => this.confirmed.has(w.kind + ":" + n) && (!w.presence || this.joined.has(n)));
        if (!done) return true;
        this._toReg(w.reg, w.sock, JSON.stringify({ type: "subscribed", kind: w.kind, names: w.names, id: w.id }));
        return false;
      });
    }

    _unsubscribe(reg, msg) {
      const lists = { channel: msg.channels, pattern: msg.patterns, shard: msg.shards };
      const everything = Object.keys(lists).every((k) => lists[k] === undefined);
      const drop = {};
      const answers = [];
      Object.keys(KINDS).forEach((kind) => {
        const names = everything ? Array.from(reg.subs[kind]) : listOf(lists[kind]);
        names.forEach((n) => {
          reg.subs[kind].delete(n);
          if (kind === "channel") reg.presence.delete(n);
        });
        drop[kind] = names;
        if (names.length > 0 || (everything && kind === "channel")) answers.push({ type: "unsubscribed", kind: kind, names: names });
      });
      this.waiters.forEach((w) => {
        if (w.reg === reg) w.names = w.names.filter((n) => reg.subs[w.kind].has(n));
      });
      this._unsubscribeUnwanted(drop);
      this._settle();
      if (msg.id === undefined) return;
      if (answers.length === 0) answers.push({ type: "unsubscribed", kind: "channel", names: [] });
      answers.forEach((a) => {
        a.id = msg.id;
        this._toReg(reg, reg.sock, JSON.stringify(a));
      });
    }

    _wanted(kind, name) {
      for (const reg of this.regs.values()) if (reg.subs[kind].has(name)) return true;
      return false;
    }

    /** Unsubscribe on the WebSocket the names no tab wants any more: {kind: [names]}. */
    _unsubscribeUnwanted(names) {
      const op = { op: "unsubscribe" };
      let any = false;
      Object.keys(KINDS).forEach((kind) => {
        const gone = names[kind].filter((n) => {
          const k = kind + ":" + n;
          if (this._wanted(kind, n) || !(this.confirmed.has(k) || this.inflight.has(k))) return false;
          this.confirmed.delete(k);
          this.inflight.delete(k);
          if (kind === "channel") this.joined.delete(n);
          return true;
        });
        if (gone.length > 0) {
          op[KINDS[kind].unsubField] = gone;
          any = true;
        }
      });
      if (!any || !this._linkOpen()) return;
      op.id = this._realId();
      this.ownIds.add(op.id);
      this._sendReal(op);
    }

    _unwatchUnwanted(keys, patterns) {
      const regs = Array.from(this.regs.values());
      const k = keys.filter((n) => !regs.some((r) => r.watchKeys.has(n)));
      const p = patterns.filter((n) => !regs.some((r) => r.watchPatterns.has(n)));
      if (k.length + p.length === 0 || !this._linkOpen()) return;
      const id = this._realId();
      this.ownIds.add(id);
      this._sendReal({ op: "unwatch", keys: k, patterns: p, id: id });
    }

    /** Whether `reg` watches `key`, by name or by a pattern. */
    _watches(reg, key) {
      if (reg.watchKeys.has(key)) return true;
      for (const p of reg.watchPatterns.keys()) if (globMatch(p, key)) return true;
      return false;
    }

    // ---------------------------------------------------------------- Herald's frames

    _toReg(reg, sock, data) {
      if (reg.sock === sock && reg.open) this._post({ t: "frame", to: [reg.tab + ":" + sock], data: data });
    }

    /** The frame (unchanged: encoded once) to every open tab for which `wants(reg)`. */
    _toTabs(text, wants) {
      const to = [];
      this.regs.forEach((reg) => { if (reg.open && wants(reg)) to.push(reg.tab + ":" + reg.sock); });
      if (to.length > 0) this._post({ t: "frame", to: to, data: text });
    }

    fromServer(text) {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (err) {
        Herald.prototype._onText.call(this.link, text);
        return;
      }
      if (!msg || typeof msg !== "object") return;
      // An id is an op's (an entry's id is its stream position).
      if (msg.id !== undefined && msg.type !== "entry") {
        if (!this._answered(msg)) Herald.prototype._onText.call(this.link, text); // its own ping, refresh
        return;
      }
      switch (msg.type) {
        case "message":
          this._toTabs(text, (r) => r.subs.channel.has(msg.channel));
          break;
        case "pmessage":
          this._toTabs(text, (r) => r.subs.pattern.has(msg.pattern));
          break;
        case "smessage":
          this._toTabs(text, (r) => r.subs.shard.has(msg.channel));
          break;
        case "entry":
          this._entry(msg, text);
          break;
        case "join":
        case "leave":
          this._toTabs(text, (r) => r.presence.has(msg.channel));
          break;
        case "value":
        case "deleted":
        case "expired":
          this._toTabs(text, (r) => this._watches(r, String(msg.key)));
          break;
        case "watching": // a pattern's fresh values after its gap are all sent
          this._toTabs(text, (r) => listOf(msg.patterns).some((p) => r.watchPatterns.has(p)) ||
            listOf(msg.keys).some((k) => r.watchKeys.has(k)));
          break;
        case "error": // without an id: a watched key that could not be read, or a notice for all
          if (typeof msg.key === "string") this._toTabs(text, (r) => this._watches(r, msg.key));
          else this._toTabs(text, () => true);
          break;
        case "gap":
          if (msg.kind === "watch") this._toTabs(text, (r) => r.watchPatterns.has(msg.pattern));
          else if (typeof msg.stream === "string") this._toTabs(text, (r) => r.streams.has(msg.stream));
          else {
            const kind = msg.kind || "channel";
            const name = kind === "pattern" ? msg.pattern : msg.channel;
            this._toTabs(text, (r) => Boolean(r.subs[kind]) && r.subs[kind].has(name));
          }
          break;
        case "unsubscribed": // Herald ended subscriptions a refreshed token does not cover
          this._revoked(msg, text);
          break;
        case "token_expiring": // the holder renews its own token on its own connection
          Herald.prototype._onText.call(this.link, text);
          break;
        default: // dropped, notices, errors without an id: every tab
          this._toTabs(text, () => true);
      }
    }

    /** An answer to an op of the hub or of a tab: settle it; false if it is the link's own. */
    _answered(msg) {
      if (this.ownIds.delete(msg.id)) return true;
      const sub = this.realSubs.get(msg.id);
      if (sub) {
        this.realSubs.delete(msg.id);
        sub.names.forEach((n) => {
          const k = sub.kind + ":" + n;
          const asked = this.inflight.get(k);
          if (asked && asked.id === msg.id) this.inflight.delete(k);
          if (msg.type === "subscribed" && this._wanted(sub.kind, n)) {
            this.confirmed.add(k);
            if (sub.presence) this.joined.add(n);
          }
        });
        if (msg.type === "error") this._subscribeFailed(sub, msg);
        this._settle();
        return true;
      }
      const a = this.answers.get(msg.id);
      if (!a) return false; // the link's own ping or refresh
      this.answers.delete(msg.id);
      const reg = this.regs.get(a.tab);
      if (reg && a.watch && msg.type === "error" && reg.sock === a.sock) {
        // Refused: this op's names count no more for the tab (another of its watches may hold them).
        countNames(reg.watchKeys, a.watch.keys, -1);
        countNames(reg.watchPatterns, a.watch.patterns, -1);
      }
      if (reg) {
        msg.id = a.id;
        this._toReg(reg, a.sock, JSON.stringify(msg));
      }
      if (a.watch) {
        this.watchesInFlight -= 1;
        this._pumpWatches();
      }
      return true;
    }

    /** Herald refused a subscribe op of the hub: every tab op waiting for those names fails. */
    _subscribeFailed(sub, msg) {
      this.waiters = this.waiters.filter((w) => {
        if (w.kind !== sub.kind || !w.names.some((n) => sub.names.indexOf(n) >= 0)) return true;
        sub.names.forEach((n) => {
          w.reg.subs[w.kind].delete(n);
          w.reg.presence.delete(n);
        });
        this._toReg(w.reg, w.sock, JSON.stringify(Object.assign({}, msg, { id: w.id })));
        return false;
      });
    }

    _revoked(msg, text) {
      const names = Array.isArray(msg.names) ? msg.names : [];
      if (msg.kind === "watch" || msg.kind === "watch_pattern") {
        const held = (r) => (msg.kind === "watch" ? r.watchKeys : r.watchPatterns);
        this._toTabs(text, (r) => names.some((n) => held(r).has(n)));
        this.regs.forEach((r) => names.forEach((n) => held(r).delete(n)));
        return;
      }
      if (msg.kind === "stream") {
        this._toTabs(text, (r) => names.some((n) => r.streams.has(n)));
        return;
      }
      if (!KINDS[msg.kind]) return;
      this._toTabs(text, (r) => names.some((n) => r.subs[msg.kind].has(n)));
      this.regs.forEach((r) => names.forEach((n) => {
        r.subs[msg.kind].delete(n);
        if (msg.kind === "channel") r.presence.delete(n);
      }));
      names.forEach((n) => {
        this.confirmed.delete(msg.kind + ":" + n);
        this.joined.delete(n);
      });
    }

    /** An entry goes to each tab reading its stream that has not had it; a tab between two sockets keeps it in its buffer. */
    _entry(msg, text) {
      if (typeof msg.stream !== "string" || typeof msg.id !== "string") return;
      const key = idKey(msg.id);
      this.lastSeen.set(msg.stream, key);
      const to = [];
      this.regs.forEach((reg) => {
        if (!reg.streams.has(msg.stream)) return;
        const pos = reg.streams.get(msg.stream);
        if (pos && compareKeys(key, pos) <= 0) return; // already sent (or before its `from`)
        reg.streams.set(msg.stream, key);
        if (reg.open) to.push(reg.tab + ":" + reg.sock);
        else if (reg.buffer.length < SHARED.buffer) reg.buffer.push({ stream: msg.stream, data: text });
        else {
          // Too much to keep: it attaches as a new reader, from the position its Herald gives.
          reg.buffer = [];
          reg.streams = new Map();
        }
      });
      if (to.length > 0) this._post({ t: "frame", to: to, data: text });
    }
  }

  /** Add `by` to each name's count in `map` (a name at 0 is removed). */
  function countNames(map, names, by) {
    names.forEach((n) => {
      const left = (map.get(n) || 0) + by;
      if (left > 0) map.set(n, left);
      else map.delete(n);
    });
  }

  /** A name or a list of names from an op, as a list of strings. */
  function listOf(v) {
    if (v === undefined || v === null) return [];
    return (Array.isArray(v) ? v : [v]).filter((n) => typeof n === "string");
  }

  function base64Bytes(text) {
    const bin = root.atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  /** The payload as bytes: base64-decoded when Herald marked it so, else UTF-8 encoded. */
  Herald.bytes = function (msg) {
    if (msg && msg.encoding === "base64") return base64Bytes(msg.data);
    return new TextEncoder().encode(msg && typeof msg.data === "string" ? msg.data : "");
  };

  /**
   * A watched key's value with its strings as bytes (Uint8Array): base64-decoded when Herald
   * marked the value so (some string of it is not UTF-8), else UTF-8 encoded. A string →
   * bytes; a list or a set → [bytes]; a hash → [[field, value]]; a sorted set → [[member,
   * score]]; a stream → [{id, fields: [[name, value]]}]. null when the message has no value
   * (kind "none", truncated, unsupported, deleted, expired).
   */
  Herald.valueBytes = function (msg) {
    if (!msg || msg.value === undefined || msg.value === null) return null;
    const bytes = msg.encoding === "base64" ? base64Bytes : (text) => new TextEncoder().encode(text);
    const pairs = (o) => Object.keys(o).map((k) => [bytes(k), bytes(o[k])]);
    const v = msg.value;
    switch (msg.kind) {
      case "string": return bytes(v);
      case "hash": return pairs(v);
      case "zset": return v.map((pair) => [bytes(pair[0]), pair[1]]);
      case "stream": return v.map((e) => ({ id: e.id, fields: pairs(e.fields) }));
      default: return v.map(bytes); // list, set
    }
  };
  Herald.HeraldError = HeraldError;
  Herald.version = "0.1.0";

  root.Herald = Herald;
})(typeof globalThis !== "undefined" ? globalThis : this);
