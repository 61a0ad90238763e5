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

  const DEFAULTS = {
    minDelay: 500, // ms: first reconnect delay (before jitter)
    maxDelay: 15000, // ms: backoff cap
    stableAfter: 5000, // ms: a connection that stayed open this long resets the backoff
    requestTimeout: 10000, // ms: publish/ping answers, and a heartbeat's pong
    connectTimeout: 10000, // ms: a connection attempt that has not opened by then is retried
    heartbeat: 30000, // ms of silence from Herald before a ping op checks the link; 0: never
    reconnect: true,
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
      this._connect();
    }

    // ------------------------------------------------------------------ events

    /** on("state"|"open"|"close"|"message"|"gap"|"dropped"|"join"|"leave"|"error", fn); returns a function that removes fn. */
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
      this._setState("closed", {});
    }

    /** Reconnect now if a reconnect is scheduled (e.g. after the network came back). */
    reconnectNow() {
      if (this._reconnectTimer !== null) this._connect();
    }

    _wake() {
      if (root.document && root.document.visibilityState === "hidden") return;
      this.reconnectNow();
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
        ws = new Impl(url);
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
      const delay = Math.round(exp / 2 + Math.random() * (exp / 2));
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
          if (msg.reason === "forbidden") this._revoked(msg);
          this._emit("unsubscribed", { kind: msg.kind, names: msg.names || [], reason: msg.reason });
          if (msg.id !== undefined) this._answer(msg.id, true, msg);
          break;
        case "entry":
          this._entry(msg);
          break;
        case "gap": {
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
          if (request) {
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

  /** The payload as bytes: base64-decoded when Herald marked it so, else UTF-8 encoded. */
  Herald.bytes = function (msg) {
    if (msg && msg.encoding === "base64") {
      const bin = root.atob(msg.data);
      const out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out;
    }
    return new TextEncoder().encode(msg && typeof msg.data === "string" ? msg.data : "");
  };
  Herald.HeraldError = HeraldError;
  Herald.version = "0.1.0";

  root.Herald = Herald;
})(typeof globalThis !== "undefined" ? globalThis : this);
