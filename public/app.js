// Herald demo page. Plain script, no build step, no external resources.
//
// - Live channels: one herald.js client (a WebSocket to /subscribe that reconnects and restores
//   its subscriptions); each channel, pattern or shard subscription is a card with its own feed.
// - Publish: over the same WebSocket (herald.publish), plain or sharded.
// - Stream history: GET /streams/{key}?from=&to=&count= for a time range; "follow live" reads
//   /events?stream=..&from=<last id shown> with EventSource (Server-Sent Events), which resumes
//   by itself; POST /streams/{key} appends.
// - Metrics: /metrics (Prometheus text) polled every 2 s, parsed here, shown with sparklines.
//
// Every piece of data from the network goes on the page through textContent (never innerHTML).
(function () {
  "use strict";

  const FEED_CAP = 200; // rows kept per channel card
  const TABLE_CAP = 2000; // stream rows kept in the table
  const METRICS_EVERY = 2000; // ms
  const SPARK_POINTS = 30; // samples per sparkline (60 s)

  const KINDS = {
    channel: { label: "channel", unsubscribe: "unsubscribe", subscribe: "subscribe" },
    pattern: { label: "pattern", unsubscribe: "punsubscribe", subscribe: "psubscribe" },
    shard: { label: "shard", unsubscribe: "sunsubscribe", subscribe: "ssubscribe" },
  };
  const KIND_OF_DELIVERY = { message: "channel", pmessage: "pattern", smessage: "shard" };

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $("status"),
    statusDetail: $("status-detail"),
    statusUrl: $("status-url"),
    reconnectNow: $("reconnect-now"),
    conn: document.querySelector(".conn"),
    channelInput: $("channel-input"),
    subscribeSharded: $("subscribe-sharded"),
    patternInput: $("pattern-input"),
    subscribeForm: $("subscribe-form"),
    psubscribeForm: $("psubscribe-form"),
    cards: $("channels"),
    cardsEmpty: $("channels-empty"),
    channelCount: $("channel-count"),
    wsError: $("ws-error"),
    publishForm: $("publish-form"),
    publishChannel: $("publish-channel"),
    publishMessage: $("publish-message"),
    publishSharded: $("publish-sharded"),
    publishBtn: $("publish-btn"),
    publishResult: $("publish-result"),
    knownChannels: $("known-channels"),
    curlHost: $("curl-host"),
    toasts: $("toasts"),
    streamForm: $("stream-form"),
    streamKey: $("stream-key"),
    streamFrom: $("stream-from"),
    streamTo: $("stream-to"),
    streamCount: $("stream-count"),
    streamQueryBtn: $("stream-query-btn"),
    streamRows: $("stream-rows"),
    streamEmpty: $("stream-empty"),
    streamWrap: $("stream-table-wrap"),
    streamSummary: $("stream-summary"),
    streamMore: $("stream-more"),
    streamFollow: $("stream-follow"),
    streamFollowState: $("stream-follow-state"),
    appendForm: $("stream-append-form"),
    appendFields: $("append-fields"),
    appendBtn: $("append-btn"),
    appendResult: $("append-result"),
    appendKey: $("append-key"),
    metricsUpdated: $("metrics-updated"),
  };

  // ---------------------------------------------------------------- small helpers

  function pad(n, w) {
    return String(n).padStart(w, "0");
  }

  function clock(d, ms) {
    const t = pad(d.getHours(), 2) + ":" + pad(d.getMinutes(), 2) + ":" + pad(d.getSeconds(), 2);
    return ms === false ? t : t + "." + pad(d.getMilliseconds(), 3);
  }

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  /** "14:02:11.123", or "Nov 24 14:02:11.123" when not today. */
  function stamp(d) {
    if (sameDay(d, new Date())) return clock(d);
    return d.toLocaleDateString("en-US", { month: "short", day: "numeric" }) + " " + clock(d);
  }

  /** A Date as the value of an <input type="datetime-local"> (local time, seconds). */
  function toLocalInput(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1, 2) + "-" + pad(d.getDate(), 2) +
      "T" + pad(d.getHours(), 2) + ":" + pad(d.getMinutes(), 2) + ":" + pad(d.getSeconds(), 2);
  }

  /** The ISO-8601 (UTC) time of a datetime-local value, which is local time; "" when empty. */
  function localInputToIso(value) {
    if (!value) return "";
    const d = new Date(value); // no offset in the text: the spec reads it as local time
    return isNaN(d.getTime()) ? null : d.toISOString();
  }

  function span(cls, text) {
    const s = document.createElement("span");
    s.className = cls;
    s.textContent = text;
    return s;
  }

  function fmt(n) {
    if (n === null || n === undefined || !isFinite(n)) return "\u2013";
    return Math.round(n).toLocaleString("en-US");
  }

  function fmtRate(r) {
    if (!isFinite(r) || r <= 0) return "0/s";
    if (r >= 100) return Math.round(r).toLocaleString("en-US") + "/s";
    if (r >= 10) return r.toFixed(0) + "/s";
    return r.toFixed(1).replace(/\.0$/, "") + "/s";
  }

  function payloadText(data) {
    if (typeof data === "string") return data;
    if (data === undefined || data === null) return "";
    return JSON.stringify(data);
  }

  let toastSeq = 0;
  /** A short message in the corner (kind: "info", "warn", "error"). */
  function toast(kind, text, ms) {
    const t = document.createElement("div");
    t.className = "toast " + kind;
    t.dataset.kind = kind;
    t.id = "toast-" + ++toastSeq;
    t.textContent = text;
    el.toasts.appendChild(t);
    while (el.toasts.childElementCount > 4) el.toasts.removeChild(el.toasts.firstElementChild);
    setTimeout(function () { t.classList.add("leaving"); }, (ms || 6000) - 300);
    setTimeout(function () { t.remove(); }, ms || 6000);
  }

  // ================================================================ connection

  // One herald.js client for the page: it reconnects with backoff and restores subscriptions.
  // A guest name for presence (user= is untrusted: display only; a JWT's sub would win), kept
  // for the browser so that its tabs ask for the same URL and share one connection.
  const guest = guestName();
  const shared = !/[?&]shared=0(&|$)/.test(location.search);
  const herald = new window.Herald("/subscribe?user=" + guest, { shared: shared });
  window.heraldClient = herald; // for the console (and the browser tests)

  function guestName() {
    const fresh = "guest-" + Math.random().toString(36).slice(2, 6);
    try {
      const kept = window.localStorage.getItem("herald-demo-guest");
      if (kept && /^guest-[a-z0-9]{1,8}$/.test(kept)) return kept;
      window.localStorage.setItem("herald-demo-guest", fresh);
    } catch (err) { /* storage blocked: a name per tab */ }
    return fresh;
  }

  let countdownTimer = null;
  let errorTimer = null;
  const cards = new Map(); // channel cards: "kind:name" → card record (see renderCards)

  function setState(state, detail) {
    el.status.textContent = state;
    el.status.dataset.state = state;
    el.conn.classList.remove("connecting", "open", "reconnecting", "closed");
    el.conn.classList.add(state);
    el.statusDetail.textContent = detail || "";
    el.reconnectNow.hidden = state !== "reconnecting";
    document.body.dataset.connection = state;
  }

  function showState(state, info) {
    info = info || {};
    clearInterval(countdownTimer);
    if (state === "reconnecting" && info.retryAt) {
      const why = info.code === 1001 ? "server restarting \u00b7 " : "";
      const tick = function () {
        const left = Math.max(0, Math.ceil((info.retryAt - Date.now()) / 1000));
        setState("reconnecting", why + "retry in " + left + "s");
      };
      tick();
      countdownTimer = setInterval(tick, 250);
    } else if (state === "reconnecting") {
      setState("reconnecting", "attempt " + (info.attempt || 1));
    } else {
      setState(state, state === "open" && info.reconnected ? "reconnected" : "");
    }
    renderCards();
  }

  herald.on("state", showState);
  showState(herald.state === "idle" ? "connecting" : herald.state, {});
  el.statusUrl.textContent = herald.url.replace(/^wss?:\/\/[^/]+/, "");
  el.statusUrl.title = herald.url;
  el.reconnectNow.addEventListener("click", function () { herald.reconnectNow(); });

  function showError(text) {
    el.wsError.textContent = text;
    el.wsError.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(function () { el.wsError.hidden = true; }, 8000);
  }

  herald.on("error", function (err) {
    if (watchErrors.has(err)) return; // shown in the Watched key card
    showError((err.code || "error") + ": " + (err.message || "unknown error"));
    renderCards(); // a refused subscription is no longer wanted
  });
  herald.on("dropped", function (info) {
    toast("warn", info.count + " deliveries were dropped: this page was too slow to read them.", 8000);
  });

  // ================================================================ channel cards

  const cardKey = (kind, name) => kind + ":" + name;

  function parseNames(text) {
    const seen = new Set();
    return text.split(/[\s,]+/).filter(function (n) {
      if (!n || seen.has(n)) return false;
      seen.add(n);
      return true;
    });
  }

  function subscribe(kind, names) {
    if (names.length === 0) return;
    // Channel cards join the channel's presence, so the card can show who else is there.
    herald[KINDS[kind].subscribe](names, undefined, kind === "channel" ? { presence: true } : undefined)
      .catch(function () { /* shown by the "error" listener */ });
    renderCards();
  }

  function subscribeFromInput(kind, input) {
    const names = parseNames(input.value);
    if (names.length === 0) {
      input.focus();
      return;
    }
    subscribe(kind, names);
    input.value = "";
    input.focus();
  }

  function unsubscribe(kind, name) {
    herald[KINDS[kind].unsubscribe](name).then(renderCards, renderCards);
    renderCards();
  }

  function makeCard(kind, name) {
    const card = document.createElement("article");
    card.className = "card subscription";
    card.dataset.kind = kind;
    card.dataset.name = name;
    card.setAttribute("aria-label", kind + " " + name);

    const head = document.createElement("header");
    head.className = "card-head";
    const title = document.createElement("div");
    title.className = "card-title";
    const nameEl = span("name", name);
    nameEl.title = name;
    title.append(span("kind", KINDS[kind].label), nameEl);

    const state = span("card-state", "");
    const actions = document.createElement("div");
    actions.className = "card-actions";
    if (kind !== "pattern") {
      const to = document.createElement("button");
      to.type = "button";
      to.className = "icon publish-to-btn";
      to.title = "Publish to " + name;
      to.setAttribute("aria-label", "Publish to " + name);
      to.textContent = "\u270e";
      to.addEventListener("click", function () {
        el.publishChannel.value = name;
        el.publishSharded.checked = kind === "shard";
        el.publishMessage.focus();
      });
      actions.appendChild(to);
    }
    const close = document.createElement("button");
    close.type = "button";
    close.className = "icon unsubscribe-btn";
    close.dataset.kind = kind;
    close.dataset.name = name;
    close.title = "Unsubscribe";
    close.setAttribute("aria-label", "Unsubscribe from " + kind + " " + name);
    close.textContent = "\u00d7";
    close.addEventListener("click", function () {
      close.disabled = true;
      unsubscribe(kind, name);
    });
    actions.appendChild(close);
    head.append(title, state, actions);

    const meta = document.createElement("div");
    meta.className = "card-meta";
    const count = span("card-count", "0 messages");
    count.dataset.count = "0";
    const last = span("card-last", "nothing yet");
    meta.append(count, last);
    let who = null;
    if (kind === "channel") {
      who = span("card-presence", "");
      who.title = "Presence: who is in " + name + " (GET /presence/" + name + ")";
      meta.appendChild(who);
    }

    const feed = document.createElement("ol");
    feed.className = "feed";
    feed.setAttribute("aria-label", "Messages on " + kind + " " + name + ", newest first");
    const empty = document.createElement("p");
    empty.className = "feed-empty muted";
    empty.textContent = kind === "pattern"
      ? "Waiting for a publish to a matching channel\u2026"
      : "Waiting for a publish to \u201c" + name + "\u201d\u2026";

    card.append(head, meta, feed, empty);
    return { el: card, kind: kind, name: name, state: state, close: close, count: count, last: last, feed: feed, empty: empty, who: who, n: 0 };
  }

  /**
   * Cards follow herald.js: one per wanted subscription (herald.subscriptions()), plus those
   * whose unsubscribe Herald has not answered yet; data-active tells whether Herald confirmed
   * it on the current connection (herald.active()).
   */
  function renderCards() {
    const wanted = herald.subscriptions();
    const active = herald.active();
    const seen = new Set();
    Object.keys(KINDS).forEach(function (kind) {
      const w = new Set(wanted[kind] || []);
      const a = new Set(active[kind] || []);
      new Set([...w, ...a]).forEach(function (name) {
        const key = cardKey(kind, name);
        seen.add(key);
        let c = cards.get(key);
        if (!c) {
          c = makeCard(kind, name);
          cards.set(key, c);
          el.cards.appendChild(c.el);
        }
        let state;
        if (w.has(name) && a.has(name)) state = "live";
        else if (w.has(name)) state = herald.state === "open" ? "subscribing" : herald.state === "closed" ? "closed" : "waiting";
        else state = "leaving";
        c.el.dataset.active = a.has(name) ? "true" : "false";
        c.el.dataset.state = state;
        c.state.textContent = state === "live" ? "live" : state === "leaving" ? "leaving\u2026" : state === "subscribing" ? "subscribing\u2026" : state === "closed" ? "closed" : "offline";
        c.close.disabled = !w.has(name);
      });
    });
    cards.forEach(function (c, key) {
      if (!seen.has(key)) {
        c.el.remove();
        cards.delete(key);
      }
    });
    el.cardsEmpty.hidden = cards.size > 0;
    el.channelCount.textContent = String(cards.size);
    renderKnownChannels();
  }

  function renderKnownChannels() {
    const frag = document.createDocumentFragment();
    cards.forEach(function (c) {
      if (c.kind === "pattern") return;
      const o = document.createElement("option");
      o.value = c.name;
      frag.appendChild(o);
    });
    el.knownChannels.replaceChildren(frag);
  }

  function pushRow(c, li) {
    c.feed.insertBefore(li, c.feed.firstChild);
    while (c.feed.childElementCount > FEED_CAP) c.feed.removeChild(c.feed.lastElementChild);
    c.empty.hidden = true;
    setTimeout(function () { li.classList.remove("fresh"); }, 1300);
  }

  function addDelivery(msg) {
    const kind = KIND_OF_DELIVERY[msg.type];
    const key = kind === "pattern" ? msg.pattern : msg.channel;
    const c = cards.get(cardKey(kind, key));
    if (!c) return;
    const now = new Date();
    const channel = typeof msg.channel === "string" ? msg.channel : "";
    const pattern = typeof msg.pattern === "string" ? msg.pattern : "";

    const li = document.createElement("li");
    li.className = "delivery fresh";
    li.dataset.channel = channel;
    li.dataset.type = msg.type;
    if (pattern) li.dataset.pattern = pattern;

    const time = span("time", clock(now, false));
    time.title = now.toISOString();
    const body = document.createElement("div");
    body.className = "body";
    if (kind === "pattern") {
      const ch = span("channel", channel);
      ch.title = "published to " + channel;
      body.appendChild(ch);
    }
    const payload = span("payload", "");
    if (msg.encoding === "base64") {
      li.dataset.encoding = "base64";
      payload.appendChild(span("enc", "base64"));
    }
    payload.appendChild(document.createTextNode(payloadText(msg.data)));
    body.appendChild(payload);
    li.append(time, body);
    pushRow(c, li);

    c.n += 1;
    c.count.textContent = c.n + (c.n === 1 ? " message" : " messages");
    c.count.dataset.count = String(c.n);
    c.last.textContent = "last " + clock(now, false);
    c.last.title = now.toISOString();
    c.el.dataset.last = now.toISOString();
    c.el.classList.remove("pulse");
    void c.el.offsetWidth; // restart the animation
    c.el.classList.add("pulse");
  }

  /** A row in a card that is not a delivery (gap): class "event", never "delivery". */
  function addNotice(kind, name, type, text) {
    const c = cards.get(cardKey(kind, name));
    if (!c) return;
    const now = new Date();
    const li = document.createElement("li");
    li.className = "event fresh";
    li.dataset.type = type;
    li.dataset.name = name;
    const time = span("time", clock(now, false));
    time.title = now.toISOString();
    const body = document.createElement("div");
    body.className = "body";
    body.append(span("tag", type), document.createTextNode(" " + text));
    li.append(time, body);
    pushRow(c, li);
  }

  // ================================================================ presence

  /** Reads a channel card's presence again: "N here: alice, bob +2". */
  function refreshPresence(name) {
    const c = cards.get(cardKey("channel", name));
    if (!c || !c.who) return;
    herald.presence(name).then(function (p) {
      const users = Array.from(new Set(p.members.map(function (m) { return m.user || "anonymous"; })));
      const shown = users.slice(0, 3).join(", ") + (users.length > 3 ? " +" + (users.length - 3) : "");
      c.who.textContent = p.clients + " here" + (shown ? ": " + shown : "");
      c.who.dataset.clients = String(p.clients);
      c.who.dataset.users = String(p.users);
    }, function () { /* shown by the "error" listener or the connection state */ });
  }

  ["join", "leave"].forEach(function (type) {
    herald.on(type, function (m) {
      addNotice("channel", m.channel, type, (m.user || "anonymous") + (m.user === guest ? " (you)" : "") +
        (type === "join" ? " joined" : " left"));
      refreshPresence(m.channel);
    });
  });

  herald.on("message", addDelivery);
  herald.on("subscribed", renderCards);
  herald.on("unsubscribed", renderCards);
  herald.on("gap", function (gap) {
    if (gap.kind === "stream" || gap.kind === "watch") return;
    const name = gap.kind === "pattern" ? gap.pattern : gap.channel;
    addNotice(gap.kind || "channel", name, "gap", gap.source === "reconnect"
      ? "reconnected: messages published meanwhile were missed"
      : "Herald's Redis link came back: messages published meanwhile were missed");
  });

  el.subscribeForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    subscribeFromInput(el.subscribeSharded.checked ? "shard" : "channel", el.channelInput);
  });
  el.psubscribeForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    subscribeFromInput("pattern", el.patternInput);
  });
  document.querySelectorAll("#channels-empty .chip").forEach(function (chip) {
    chip.addEventListener("click", function () {
      subscribe(chip.dataset.kind, [chip.dataset.name]);
    });
  });

  // ================================================================ shared connection

  const sharedEl = { state: $("shared-state"), detail: $("shared-detail") };

  /** The "Shared connection" card: which tab holds the page's WebSocket (herald.shared). */
  function showShared(info) {
    const mode = info.mode;
    const text = {
      holder: "this tab holds it",
      via: "via another tab",
      waiting: "finding the holding tab\u2026",
      fallback: "per-tab fallback",
      off: "off: a connection per tab",
    };
    sharedEl.state.textContent = text[mode] || mode;
    sharedEl.state.dataset.mode = mode;
    let detail = "";
    if (mode === "via") detail = "tab " + String(info.holder).slice(0, 8) + " holds the WebSocket";
    if ((mode === "holder" || mode === "via") && info.tabs) detail += (detail ? " \u00b7 " : "") + info.tabs + (info.tabs === 1 ? " tab" : " tabs") + " share it";
    if (mode === "fallback") detail = info.reason || "";
    sharedEl.detail.textContent = detail;
  }
  herald.on("shared", showShared);
  showShared(herald.shared);

  // ================================================================ watched key

  // The "Watched key" card: herald.watch() of one key (demo:jobs when the page opens), shown
  // as its kind and value after every change; Push and Pop change it through Herald's queue API.
  const watchEl = {
    form: $("watch-form"), key: $("watch-key"), out: $("watch-value"),
    push: $("watch-push"), pop: $("watch-pop"), result: $("watch-result"),
  };
  let stopWatch = null;
  let watchedKey = "";
  const watchErrors = new WeakSet(); // errors the card shows (the banner leaves them out)
  let pushed = 0;

  function showWatch(state, head, body) {
    watchEl.out.dataset.state = state;
    watchEl.out.replaceChildren();
    const p = document.createElement("p");
    p.textContent = head;
    watchEl.out.appendChild(p);
    if (body !== undefined) {
      const pre = document.createElement("pre");
      pre.textContent = body;
      watchEl.out.appendChild(pre);
    }
  }

  /** A value message as the card's head line and body. */
  function describeValue(m) {
    const when = " \u00b7 " + stamp(new Date());
    if (m.kind === "none") return ["no such key (yet)" + when, undefined];
    if (m.unsupported) return [m.kind + when, "(a type Herald does not read)"];
    if (m.truncated) return [m.kind + when, "(" + m.size + " bytes: over Herald's --max-watch-value)"];
    const head = m.kind + (m.encoding === "base64" ? " (not UTF-8: base64)" : "") + when;
    return [head, m.kind === "string" ? String(m.value) : JSON.stringify(m.value, null, 2)];
  }

  function watchKey(key) {
    if (stopWatch) stopWatch();
    watchedKey = key;
    watchEl.out.dataset.key = key;
    delete watchEl.out.dataset.kind;
    showWatch("waiting", "Watching \u201c" + key + "\u201d\u2026");
    stopWatch = herald.watch(key, null, {
      value: function (m) {
        const [head, body] = describeValue(m);
        watchEl.out.dataset.kind = m.kind;
        showWatch(m.kind === "none" ? "none" : "value", head, body);
      },
      deleted: function () { watchEl.out.dataset.kind = "none"; showWatch("deleted", "deleted \u00b7 " + stamp(new Date())); },
      expired: function () { watchEl.out.dataset.kind = "none"; showWatch("expired", "expired \u00b7 " + stamp(new Date())); },
      unsubscribed: function () { showWatch("error", "no longer allowed: the refreshed token does not cover this key"); },
      error: function (err) {
        watchErrors.add(err);
        showWatch("error", (err.code || "error") + ": " + (err.message || ""));
      },
    });
  }

  watchEl.form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    const key = watchEl.key.value.trim();
    if (!key) {
      watchEl.key.focus();
      return;
    }
    watchKey(key);
  });

  /** Push or pop the watched key as a queue, through Herald's HTTP API. */
  async function queueOp(method) {
    const key = watchedKey;
    if (!key) return;
    setResult(watchEl.result, "pending", method === "POST" ? "Pushing\u2026" : "Popping\u2026");
    try {
      const resp = await fetch("/queues/" + encodeURIComponent(key), method === "POST"
        ? { method: "POST", body: "job " + (++pushed) + " at " + clock(new Date(), false) }
        : { method: "GET", cache: "no-store" });
      if (resp.status === 204) return setResult(watchEl.result, "ok", "The queue is empty.");
      const text = await resp.text();
      let body = null;
      try { body = JSON.parse(text); } catch (err) { /* a popped item */ }
      if (!resp.ok) throw new Error((body && body.error ? body.error : "HTTP " + resp.status) + (body && body.message ? ": " + body.message : ""));
      setResult(watchEl.result, "ok", method === "POST" ? "Pushed: length " + body.length : "Popped \u201c" + text + "\u201d");
    } catch (err) {
      setResult(watchEl.result, "error", "Error " + err.message);
    }
  }
  watchEl.push.addEventListener("click", function () { queueOp("POST"); });
  watchEl.pop.addEventListener("click", function () { queueOp("GET"); });
  watchKey(watchEl.key.value.trim() || "demo:jobs");

  // ================================================================ publish

  function setResult(out, kind, text) {
    out.className = "result " + kind;
    out.dataset.status = kind;
    out.textContent = text;
  }

  async function publish(ev) {
    ev.preventDefault();
    const channel = el.publishChannel.value.trim();
    const message = el.publishMessage.value;
    const sharded = el.publishSharded.checked;
    delete el.publishResult.dataset.receivers;
    if (!channel) {
      setResult(el.publishResult, "error", "A channel is required.");
      el.publishChannel.focus();
      return;
    }
    el.publishBtn.disabled = true;
    setResult(el.publishResult, "pending", herald.state === "open" ? "Publishing\u2026" : "Waiting for the connection\u2026");
    try {
      // {"op":"publish"} over the page's WebSocket; herald.js matches the answer by id.
      const answer = await herald.publish(channel, message, { sharded: sharded });
      const n = answer.receivers;
      setResult(el.publishResult, "ok", (sharded ? "Sharded publish" : "Published") + " to \u201c" + channel + "\u201d: " +
        n + (n === 1 ? " receiver" : " receivers"));
      el.publishResult.dataset.receivers = String(n);
    } catch (err) {
      setResult(el.publishResult, "error", "Error " + (err.code || "error") + ": " + (err.message || String(err)));
    } finally {
      el.publishBtn.disabled = false;
    }
  }

  el.publishForm.addEventListener("submit", publish);
  el.publishMessage.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) el.publishForm.requestSubmit();
  });
  if (location.host) el.curlHost.textContent = location.host;

  // ================================================================ stream history

  const table = {
    key: "", // the stream the table shows
    to: "", // the query's upper bound (ISO), "" for none
    count: 100,
    ids: new Set(),
    lastId: null, // newest id in the table
    queried: 0, // entries from queries
    live: 0, // entries from following
    seq: 0, // current query, so that a late answer of an older one is ignored
    range: "", // the query's time range, in words
  };

  /** The time of an entry id "ms-seq". */
  function idTime(id) {
    const ms = Number(String(id).split("-")[0]);
    return isFinite(ms) ? new Date(ms) : null;
  }

  function compareIds(a, b) {
    const [am, as] = a.split("-").map(Number);
    const [bm, bs] = b.split("-").map(Number);
    return am !== bm ? am - bm : (as || 0) - (bs || 0);
  }

  function entryRow(entry, live) {
    const tr = document.createElement("tr");
    tr.dataset.id = entry.id;
    if (live) {
      tr.dataset.live = "true";
      tr.className = "live fresh";
      setTimeout(function () { tr.classList.remove("fresh"); }, 1500);
    }
    const idCell = document.createElement("td");
    idCell.className = "id";
    idCell.textContent = entry.id;
    const timeCell = document.createElement("td");
    timeCell.className = "time";
    const t = idTime(entry.id);
    timeCell.textContent = t ? stamp(t) : "";
    if (t) timeCell.title = t.toISOString();
    if (live) timeCell.appendChild(span("live-tag", "live"));
    const fieldsCell = document.createElement("td");
    fieldsCell.className = "fields";
    const fields = entry.fields && typeof entry.fields === "object" ? entry.fields : {};
    Object.keys(fields).forEach(function (name) {
      const kv = document.createElement("span");
      kv.className = "kv";
      kv.dataset.field = name;
      kv.append(span("k", name), span("v", payloadText(fields[name])));
      fieldsCell.appendChild(kv);
    });
    tr.append(idCell, timeCell, fieldsCell);
    return tr;
  }

  function addEntries(entries, live) {
    const nearBottom = el.streamWrap.scrollHeight - el.streamWrap.scrollTop - el.streamWrap.clientHeight < 40;
    const frag = document.createDocumentFragment();
    let added = 0;
    entries.forEach(function (entry) {
      if (!entry || typeof entry.id !== "string" || table.ids.has(entry.id)) return;
      table.ids.add(entry.id);
      if (!table.lastId || compareIds(entry.id, table.lastId) > 0) table.lastId = entry.id;
      frag.appendChild(entryRow(entry, live));
      added += 1;
    });
    el.streamRows.appendChild(frag);
    while (el.streamRows.childElementCount > TABLE_CAP) {
      const first = el.streamRows.firstElementChild;
      table.ids.delete(first.dataset.id);
      first.remove();
    }
    el.streamEmpty.hidden = el.streamRows.childElementCount > 0;
    if (live && nearBottom) el.streamWrap.scrollTop = el.streamWrap.scrollHeight;
    return added;
  }

  function setSummary(kind, text) {
    el.streamSummary.className = "summary " + (kind === "error" ? "error" : "muted");
    el.streamSummary.dataset.status = kind;
    el.streamSummary.textContent = text;
  }

  function describeRange(fromIso, toIso) {
    const f = fromIso ? stamp(new Date(fromIso)).replace(/\.\d{3}$/, "") : "the start";
    const t = toIso ? stamp(new Date(toIso)).replace(/\.\d{3}$/, "") : "now";
    return f + " \u2192 " + t;
  }

  function updateSummary(more) {
    const n = el.streamRows.childElementCount;
    let text = n + (n === 1 ? " entry" : " entries") + " in \u201c" + table.key + "\u201d";
    if (table.live > 0) text += " (" + table.live + " live)";
    text += " \u00b7 " + table.range;
    if (more) text += " \u00b7 more after these";
    setSummary("ok", text);
    el.streamMore.hidden = !more;
  }

  async function fetchEntries(key, from, to, count) {
    let url = "/streams/" + encodeURIComponent(key) + "?from=" + encodeURIComponent(from) + "&count=" + count;
    if (to) url += "&to=" + encodeURIComponent(to);
    const resp = await fetch(url, { headers: { Accept: "application/json" } });
    let body = null;
    try { body = await resp.json(); } catch (err) { /* not JSON */ }
    if (!resp.ok) {
      const code = body && body.error ? body.error : "HTTP " + resp.status;
      throw new Error(code + (body && body.message ? ": " + body.message : ""));
    }
    return (body && Array.isArray(body.entries)) ? body.entries : [];
  }

  /** Query the range in the form: replaces the table. */
  async function query() {
    const key = el.streamKey.value.trim();
    if (!key) {
      setSummary("error", "Pick a stream key first.");
      el.streamKey.focus();
      return;
    }
    const fromIso = localInputToIso(el.streamFrom.value);
    const toIso = localInputToIso(el.streamTo.value);
    if (fromIso === null || toIso === null) {
      setSummary("error", "That is not a valid date and time.");
      return;
    }
    const count = Math.max(1, Math.min(10000, parseInt(el.streamCount.value, 10) || 100));
    el.streamCount.value = String(count);
    const seq = ++table.seq;
    el.streamQueryBtn.disabled = true;
    setSummary("pending", "Querying\u2026");
    try {
      const entries = await fetchEntries(key, fromIso || "0", toIso, count);
      if (seq !== table.seq) return;
      Object.assign(table, { key: key, to: toIso, count: count, ids: new Set(), lastId: null, queried: entries.length, live: 0, range: describeRange(fromIso, toIso) });
      el.streamRows.replaceChildren();
      el.streamWrap.scrollTop = 0;
      addEntries(entries, false);
      el.streamEmpty.textContent = "No entries in that range.";
      updateSummary(entries.length >= count);
      if (el.streamFollow.checked) startFollow();
    } catch (err) {
      if (seq !== table.seq) return;
      setSummary("error", "Error " + err.message);
    } finally {
      if (seq === table.seq) el.streamQueryBtn.disabled = false;
    }
  }

  /** The next page after the newest row (ids in `from` are exclusive). */
  async function loadMore() {
    if (!table.key || !table.lastId) return;
    el.streamMore.disabled = true;
    try {
      const entries = await fetchEntries(table.key, table.lastId, table.to, table.count);
      table.queried += entries.length;
      addEntries(entries, false);
      updateSummary(entries.length >= table.count);
    } catch (err) {
      setSummary("error", "Error " + err.message);
    } finally {
      el.streamMore.disabled = false;
    }
  }

  function markRange(range) {
    document.querySelectorAll(".quick [data-range]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.dataset.range === range ? "true" : "false");
    });
  }

  function quickRange(seconds) {
    markRange(String(seconds));
    if (seconds === "all") {
      el.streamFrom.value = "";
    } else {
      el.streamFrom.value = toLocalInput(new Date(Date.now() - Number(seconds) * 1000));
    }
    el.streamTo.value = "";
    if (el.streamKey.value.trim()) query();
    else el.streamKey.focus();
  }

  // ---------------------------------------------------------------- follow live (SSE)

  let source = null;

  function setFollowState(state) {
    el.streamFollowState.dataset.state = state;
    el.streamFollowState.textContent = state;
  }

  function stopFollow() {
    if (source) {
      source.close();
      source = null;
    }
    setFollowState("off");
  }

  /** EventSource on /events for the table's stream, after its newest row ("$": new entries only). */
  function startFollow() {
    stopFollow();
    const key = table.key || el.streamKey.value.trim();
    if (!key) {
      setFollowState("off");
      el.streamFollow.checked = false;
      setSummary("error", "Pick a stream key to follow.");
      el.streamKey.focus();
      return;
    }
    if (key !== table.key) {
      Object.assign(table, { key: key, to: "", ids: new Set(), lastId: null, queried: 0, live: 0, range: "live from now" });
      el.streamRows.replaceChildren();
      el.streamEmpty.textContent = "Waiting for new entries\u2026";
      el.streamEmpty.hidden = false;
      updateSummary(false);
    }
    const from = table.lastId || "$";
    const es = new EventSource("/events?stream=" + encodeURIComponent(key) + "&from=" + encodeURIComponent(from));
    source = es;
    setFollowState("connecting");
    es.onopen = function () {
      if (source === es) setFollowState("live");
    };
    es.onerror = function () {
      if (source !== es) return;
      setFollowState(es.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
    };
    es.onmessage = function (ev) {
      if (source !== es) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch (err) { return; }
      if (!msg || msg.stream !== table.key) return;
      if (msg.type === "entry") {
        // An upper bound in the past does not stop the live view: it shows what arrives now.
        table.live += addEntries([msg], true);
        updateSummary(!el.streamMore.hidden);
      } else if (msg.type === "gap") {
        toast("warn", "Stream \u201c" + msg.stream + "\u201d: entries after " + msg.after + " were trimmed; resuming at " + msg.earliest + ".", 8000);
      }
    };
  }

  el.streamFollow.addEventListener("change", function () {
    if (el.streamFollow.checked) startFollow();
    else stopFollow();
  });

  // ---------------------------------------------------------------- append

  /**
   * Fields from the append box: a JSON object, or name=value pairs separated by spaces or new
   * lines (values may be "quoted"); any other text is one field named "data".
   */
  function parseFields(text) {
    const trimmed = text.trim();
    if (!trimmed) return null;
    if (trimmed[0] === "{" || trimmed[0] === "[") {
      const obj = JSON.parse(trimmed);
      if (!obj || typeof obj !== "object" || Array.isArray(obj)) throw new Error("the JSON must be an object of fields");
      return obj;
    }
    const out = {};
    const re = /([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))/g;
    let m;
    let found = false;
    while ((m = re.exec(trimmed)) !== null) {
      out[m[1]] = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3];
      found = true;
    }
    return found ? out : { data: trimmed };
  }

  async function append(ev) {
    ev.preventDefault();
    const key = el.streamKey.value.trim();
    delete el.appendResult.dataset.id;
    if (!key) {
      setResult(el.appendResult, "error", "Pick a stream key first (above).");
      el.streamKey.focus();
      return;
    }
    let fields;
    try {
      fields = parseFields(el.appendFields.value);
    } catch (err) {
      setResult(el.appendResult, "error", "Not a JSON object of fields: " + err.message);
      return;
    }
    if (!fields) {
      setResult(el.appendResult, "error", "Type at least one field.");
      el.appendFields.focus();
      return;
    }
    el.appendBtn.disabled = true;
    setResult(el.appendResult, "pending", "Appending\u2026");
    try {
      const resp = await fetch("/streams/" + encodeURIComponent(key), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(fields),
      });
      let body = null;
      try { body = await resp.json(); } catch (err) { /* not JSON */ }
      if (!resp.ok) {
        throw new Error((body && body.error ? body.error : "HTTP " + resp.status) + (body && body.message ? ": " + body.message : ""));
      }
      setResult(el.appendResult, "ok", "Appended " + body.id);
      el.appendResult.dataset.id = body.id;
    } catch (err) {
      setResult(el.appendResult, "error", "Error " + err.message);
    } finally {
      el.appendBtn.disabled = false;
    }
  }

  el.streamForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    query();
  });
  el.streamMore.addEventListener("click", loadMore);
  [el.streamFrom, el.streamTo].forEach(function (input) {
    input.addEventListener("input", function () { markRange(""); });
  });
  markRange("");
  document.querySelectorAll(".quick [data-range]").forEach(function (b) {
    b.addEventListener("click", function () { quickRange(b.dataset.range); });
  });
  el.appendForm.addEventListener("submit", append);
  function showAppendKey() {
    const key = el.streamKey.value.trim();
    el.appendKey.textContent = key || "(pick a key in Stream history)";
    el.appendKey.classList.toggle("unset", !key);
  }
  el.streamKey.addEventListener("input", showAppendKey);
  el.appendFields.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) el.appendForm.requestSubmit();
  });

  // ================================================================ metrics glance

  /** Prometheus text format → {name: [{labels:{..}, value}]} (comments and histograms' buckets kept as-is). */
  function parseMetrics(text) {
    const out = {};
    text.split("\n").forEach(function (line) {
      if (!line || line[0] === "#") return;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
      if (!m) return;
      const labels = {};
      if (m[3]) {
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
        let l;
        while ((l = re.exec(m[3])) !== null) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
      }
      const value = m[4] === "+Inf" ? Infinity : m[4] === "-Inf" ? -Infinity : Number(m[4]);
      (out[m[1]] = out[m[1]] || []).push({ labels: labels, value: value });
    });
    return out;
  }

  function metricValue(metrics, name, labels) {
    const series = metrics[name] || [];
    let sum = 0;
    let found = false;
    series.forEach(function (s) {
      if (labels && !Object.keys(labels).every(function (k) { return s.labels[k] === labels[k]; })) return;
      sum += s.value;
      found = true;
    });
    return found ? sum : null;
  }

  function byLabel(metrics, name, label) {
    const out = {};
    (metrics[name] || []).forEach(function (s) { out[s.labels[label]] = s.value; });
    return out;
  }

  const history = { connections: [], subscriptions: [], published: [], delivered: [], dropped: [] };
  let prevSample = null;

  function pushHistory(name, value) {
    const h = history[name];
    h.push(value);
    while (h.length > SPARK_POINTS) h.shift();
  }

  /** Draws `values` into an inline SVG as a line over a soft area (no external resources). */
  function spark(id, values) {
    const svg = $(id);
    if (!svg) return;
    const NS = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    if (values.length < 2) return;
    const max = Math.max.apply(null, values.concat([1e-9]));
    const min = Math.min(0, Math.min.apply(null, values));
    const height = max - min || 1;
    // Until the history is full the line is stretched over a shorter window (at least 6 points).
    const step = 100 / (Math.max(values.length, 6) - 1);
    const x0 = 100 - (values.length - 1) * step;
    const pts = values.map(function (v, i) {
      return [x0 + i * step, 26 - ((v - min) / height) * 23];
    });
    const line = pts.map(function (p) { return p[0].toFixed(2) + "," + p[1].toFixed(2); }).join(" ");
    const area = document.createElementNS(NS, "polygon");
    area.setAttribute("points", x0.toFixed(2) + ",28 " + line + " 100,28");
    area.setAttribute("class", "spark-area");
    const poly = document.createElementNS(NS, "polyline");
    poly.setAttribute("points", line);
    poly.setAttribute("class", "spark-line");
    poly.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(area, poly);
  }

  function setSub(id, text) {
    const sub = $(id);
    sub.textContent = text;
    sub.title = text; // the tile may cut it short
  }

  function setMetric(id, value, text) {
    const v = $(id);
    v.dataset.value = value === null || value === undefined ? "" : String(value);
    v.textContent = text !== undefined ? text : fmt(value);
  }

  function showMetrics(metrics, now) {
    const conns = byLabel(metrics, "herald_connections", "kind");
    const subs = byLabel(metrics, "herald_subscriptions", "kind");
    const s = {
      t: now,
      connections: metricValue(metrics, "herald_connections"),
      subscriptions: metricValue(metrics, "herald_subscriptions"),
      published: metricValue(metrics, "herald_published_total"),
      publishErrors: metricValue(metrics, "herald_publish_errors_total"),
      delivered: metricValue(metrics, "herald_messages_delivered_total"),
      dropped: metricValue(metrics, "herald_messages_dropped_total"),
      ready: metricValue(metrics, "herald_ready"),
      reconnects: metricValue(metrics, "herald_redis_reconnects_total"),
      redisErrors: metricValue(metrics, "herald_redis_errors_total"),
      latencySum: metricValue(metrics, "herald_publish_duration_seconds_sum"),
      latencyCount: metricValue(metrics, "herald_publish_duration_seconds_count"),
    };
    const dt = prevSample ? (s.t - prevSample.t) / 1000 : 0;
    const rate = function (name) {
      if (!prevSample || dt <= 0 || s[name] === null || prevSample[name] === null) return 0;
      return Math.max(0, (s[name] - prevSample[name]) / dt); // a restarted Herald resets counters
    };
    const rates = { published: rate("published"), delivered: rate("delivered"), dropped: rate("dropped") };

    setMetric("metric-connections", s.connections);
    setSub("metric-connections-sub", "ws " + fmt(conns.websocket || 0) + " \u00b7 sse " + fmt(conns.sse || 0) + " \u00b7 http " + fmt(conns.http || 0));
    pushHistory("connections", s.connections || 0);

    setMetric("metric-subscriptions", s.subscriptions);
    setSub("metric-subscriptions-sub", "chan " + fmt(subs.channel || 0) + " \u00b7 pat " + fmt(subs.pattern || 0) + " \u00b7 shard " + fmt(subs.shard || 0));
    pushHistory("subscriptions", s.subscriptions || 0);

    setMetric("metric-published", s.published);
    let pubSub = fmtRate(rates.published);
    if (prevSample && s.latencyCount !== null && s.latencyCount > prevSample.latencyCount) {
      const avg = (s.latencySum - prevSample.latencySum) / (s.latencyCount - prevSample.latencyCount) * 1000;
      pubSub += " \u00b7 " + (avg < 10 ? avg.toFixed(2) : avg.toFixed(0)) + " ms avg";
    } else if (s.publishErrors) {
      pubSub += " \u00b7 " + fmt(s.publishErrors) + " errors";
    }
    setSub("metric-published-sub", pubSub);
    pushHistory("published", rates.published);

    setMetric("metric-delivered", s.delivered);
    setSub("metric-delivered-sub", fmtRate(rates.delivered) + " to clients");
    pushHistory("delivered", rates.delivered);

    setMetric("metric-dropped", s.dropped);
    setSub("metric-dropped-sub", rates.dropped > 0 ? fmtRate(rates.dropped) + " now" : "slow clients");
    $("tile-dropped").classList.toggle("bad", (s.dropped || 0) > 0);
    pushHistory("dropped", rates.dropped);

    const ready = s.ready === 1;
    setMetric("metric-ready", s.ready, s.ready === null ? "\u2013" : ready ? "Ready" : "Not ready");
    $("tile-ready").classList.toggle("bad", !ready);
    $("tile-ready").classList.toggle("good", ready);
    const build = (metrics.herald_build_info || [])[0];
    setSub("metric-ready-sub", (build && build.labels.version ? "v" + build.labels.version + " \u00b7 " : "") +
      fmt(s.reconnects || 0) + (s.reconnects === 1 ? " reconnect" : " reconnects") +
      (s.redisErrors ? " \u00b7 " + fmt(s.redisErrors) + " errors" : ""));

    Object.keys(history).forEach(function (name) { spark("spark-" + name, history[name]); });
    prevSample = s;
  }

  let metricsTimer = null;
  let metricsInFlight = false;

  async function pollMetrics() {
    clearTimeout(metricsTimer);
    metricsTimer = setTimeout(pollMetrics, METRICS_EVERY);
    if (metricsInFlight || document.hidden) return;
    metricsInFlight = true;
    const tiles = document.querySelector(".metrics");
    try {
      const resp = await fetch("/metrics", { cache: "no-store" });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const now = Date.now();
      showMetrics(parseMetrics(await resp.text()), now);
      tiles.classList.remove("stale");
      el.metricsUpdated.textContent = "updated " + clock(new Date(now), false);
      el.metricsUpdated.dataset.at = String(now);
    } catch (err) {
      tiles.classList.add("stale");
      el.metricsUpdated.textContent = "/metrics unavailable (" + (err.message || "network error") + ")";
    } finally {
      metricsInFlight = false;
    }
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) pollMetrics();
  });

  // ================================================================ start

  // Deep links: ?stream=orders&range=3600 fills the stream panel and queries it.
  const params = new URLSearchParams(location.search);
  if (params.get("stream")) {
    el.streamKey.value = params.get("stream");
    quickRange(params.get("range") || "all");
  }
  showAppendKey();

  renderCards();
  pollMetrics();
})();
