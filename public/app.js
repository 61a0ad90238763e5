// Herald demo page: one WebSocket to /subscribe, publish through POST /publish.
// Plain script, no build step, no external resources. Every piece of data from the
// network is put on the page with textContent (never innerHTML).
(function () {
  "use strict";

  const LOG_CAP = 500;
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const STABLE_AFTER_MS = 5000; // an open that lasted this long resets the backoff

  // Control-message fields per subscription kind (README, "Control messages").
  const KINDS = {
    channel: { op: "subscribe", field: "channels", unsubField: "channels", label: "channel" },
    pattern: { op: "psubscribe", field: "patterns", unsubField: "patterns", label: "pattern" },
    shard: { op: "ssubscribe", field: "channels", unsubField: "shards", label: "shard" },
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $("status"),
    statusDetail: $("status-detail"),
    conn: document.querySelector(".conn"),
    channelInput: $("channel-input"),
    patternInput: $("pattern-input"),
    subscribeForm: $("subscribe-form"),
    psubscribeForm: $("psubscribe-form"),
    subs: $("subscriptions"),
    subsEmpty: $("subscriptions-empty"),
    wsError: $("ws-error"),
    publishForm: $("publish-form"),
    publishChannel: $("publish-channel"),
    publishMessage: $("publish-message"),
    publishBtn: $("publish-btn"),
    publishResult: $("publish-result"),
    log: $("log"),
    logEmpty: $("log-empty"),
    logCount: $("log-count"),
    clearLog: $("clear-log"),
    curlHost: $("curl-host"),
  };

  // What the user asked for (survives reconnects) and what Herald confirmed on this socket.
  const desired = new Map(); // key -> {kind, name}
  const active = new Map(); // key -> {kind, name}
  const keyOf = (kind, name) => kind + "\u0000" + name;

  let ws = null;
  let attempt = 0;
  let openedAt = 0;
  let reconnectTimer = null;
  let countdownTimer = null;
  let nextId = 1;
  let errorTimer = null;

  // ---------------------------------------------------------------- connection

  function socketUrl() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + location.host + "/subscribe";
  }

  function setState(state, detail) {
    el.status.textContent = state;
    el.status.dataset.state = state;
    el.conn.classList.remove("connecting", "open", "reconnecting");
    el.conn.classList.add(state);
    el.statusDetail.textContent = detail || "";
  }

  function connect() {
    clearTimeout(reconnectTimer);
    clearInterval(countdownTimer);
    reconnectTimer = null;
    setState(attempt === 0 ? "connecting" : "reconnecting", attempt === 0 ? "" : "attempt " + (attempt + 1));

    let sock;
    try {
      sock = new WebSocket(socketUrl());
    } catch (err) {
      scheduleReconnect();
      return;
    }
    sock.binaryType = "arraybuffer";
    ws = sock;

    sock.onopen = function () {
      if (sock !== ws) return;
      openedAt = Date.now();
      setState("open", "");
      active.clear();
      renderSubscriptions();
      resubscribeAll();
    };

    sock.onmessage = function (ev) {
      if (sock !== ws) return;
      handleFrame(ev.data);
    };

    sock.onclose = function (ev) {
      if (sock !== ws) return;
      ws = null;
      if (openedAt && Date.now() - openedAt >= STABLE_AFTER_MS) attempt = 0;
      openedAt = 0;
      active.clear();
      renderSubscriptions();
      scheduleReconnect(ev.code);
    };

    // A failed connection also fires "close"; nothing more to do here.
    sock.onerror = function () {};
  }

  function scheduleReconnect(code) {
    const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, attempt));
    const delay = Math.round(exp / 2 + Math.random() * (exp / 2)); // jitter in [exp/2, exp]
    attempt += 1;
    const due = Date.now() + delay;
    const why = code === 1001 ? "server restarting · " : "";
    const tick = function () {
      const left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      setState("reconnecting", why + "retry in " + left + "s");
    };
    tick();
    clearInterval(countdownTimer);
    countdownTimer = setInterval(tick, 1000);
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, delay);
  }

  // Come back at once when the network returns or the tab becomes visible again.
  function reconnectNowIfWaiting() {
    if (reconnectTimer !== null) connect();
  }
  window.addEventListener("online", reconnectNowIfWaiting);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") reconnectNowIfWaiting();
  });

  function send(obj) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    obj.id = nextId++;
    ws.send(JSON.stringify(obj));
    return true;
  }

  function resubscribeAll() {
    const byKind = {};
    desired.forEach(function (s) {
      (byKind[s.kind] = byKind[s.kind] || []).push(s.name);
    });
    Object.keys(byKind).forEach(function (kind) {
      sendSubscribe(kind, byKind[kind]);
    });
  }

  function sendSubscribe(kind, names) {
    const k = KINDS[kind];
    if (!k || names.length === 0) return;
    const msg = { op: k.op };
    msg[k.field] = names;
    send(msg);
  }

  // ---------------------------------------------------------------- incoming frames

  function handleFrame(data) {
    if (typeof data !== "string") return; // binary frames only come with format=raw
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (err) {
      addDelivery({ type: "raw", channel: "", data: data });
      return;
    }
    if (!msg || typeof msg !== "object") return;

    switch (msg.type) {
      case "subscribed":
        namesOf(msg).forEach(function (name) {
          const key = keyOf(msg.kind, name);
          // Ignore a late confirmation for something the user already dropped.
          if (desired.has(key)) active.set(key, { kind: msg.kind, name: name });
        });
        renderSubscriptions();
        break;
      case "unsubscribed":
        namesOf(msg).forEach(function (name) {
          active.delete(keyOf(msg.kind, name));
        });
        renderSubscriptions();
        break;
      case "message":
      case "pmessage":
      case "smessage":
        addDelivery(msg);
        break;
      case "error":
        showError((msg.code || "error") + ": " + (msg.message || "unknown error"));
        break;
      default:
        break; // pong, published, anything newer
    }
  }

  function namesOf(msg) {
    return Array.isArray(msg.names) ? msg.names.filter((n) => typeof n === "string") : [];
  }

  function showError(text) {
    el.wsError.textContent = text;
    el.wsError.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(function () {
      el.wsError.hidden = true;
    }, 8000);
  }

  // ---------------------------------------------------------------- subscriptions

  function parseNames(text) {
    const seen = new Set();
    return text.split(/[\s,]+/).filter(function (n) {
      if (!n || seen.has(n)) return false;
      seen.add(n);
      return true;
    });
  }

  function subscribe(kind, input) {
    const names = parseNames(input.value);
    if (names.length === 0) {
      input.focus();
      return;
    }
    names.forEach(function (name) {
      desired.set(keyOf(kind, name), { kind: kind, name: name });
    });
    sendSubscribe(kind, names); // when closed, the next open sends everything in `desired`
    input.value = "";
    input.focus();
  }

  function unsubscribe(kind, name) {
    const key = keyOf(kind, name);
    desired.delete(key);
    const k = KINDS[kind];
    const msg = { op: "unsubscribe" };
    msg[k ? k.unsubField : "channels"] = [name];
    if (!send(msg)) {
      active.delete(key);
      renderSubscriptions();
    }
  }

  function renderSubscriptions() {
    const items = Array.from(active.values()).sort(function (a, b) {
      return a.kind === b.kind ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.kind < b.kind ? -1 : 1;
    });
    const frag = document.createDocumentFragment();
    items.forEach(function (s) {
      const li = document.createElement("li");
      li.className = "subscription";
      li.dataset.kind = s.kind;
      li.dataset.name = s.name;

      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = (KINDS[s.kind] && KINDS[s.kind].label) || s.kind;

      const name = document.createElement("span");
      name.className = "name";
      name.textContent = s.name;

      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "unsubscribe-btn";
      btn.dataset.kind = s.kind;
      btn.dataset.name = s.name;
      btn.title = "Unsubscribe";
      btn.setAttribute("aria-label", "Unsubscribe from " + s.kind + " " + s.name);
      btn.textContent = "\u00d7";
      btn.addEventListener("click", function () {
        btn.disabled = true;
        unsubscribe(s.kind, s.name);
      });

      li.append(kind, name, btn);
      frag.appendChild(li);
    });
    el.subs.replaceChildren(frag);
    el.subsEmpty.hidden = items.length > 0;
  }

  // ---------------------------------------------------------------- delivery log

  function pad(n, w) {
    return String(n).padStart(w, "0");
  }

  function clock(d) {
    return pad(d.getHours(), 2) + ":" + pad(d.getMinutes(), 2) + ":" + pad(d.getSeconds(), 2) + "." + pad(d.getMilliseconds(), 3);
  }

  function cell(cls, text) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    return span;
  }

  function addDelivery(msg) {
    const now = new Date();
    const channel = typeof msg.channel === "string" ? msg.channel : "";
    const pattern = typeof msg.pattern === "string" ? msg.pattern : "";
    const data = typeof msg.data === "string" ? msg.data : JSON.stringify(msg.data);

    const li = document.createElement("li");
    li.className = "delivery fresh";
    li.dataset.channel = channel;
    li.dataset.type = msg.type;
    if (pattern) li.dataset.pattern = pattern;

    const time = cell("time", clock(now));
    time.title = now.toISOString();
    const payload = cell("payload", "");
    if (msg.encoding === "base64") {
      li.dataset.encoding = "base64";
      payload.appendChild(cell("enc", "base64"));
    }
    payload.appendChild(document.createTextNode(data == null ? "" : data));

    const ch = cell("channel", channel);
    ch.title = channel;
    const pt = cell("pattern", pattern);
    pt.title = pattern;

    li.append(time, cell("type", msg.type), ch, pt, payload);
    el.log.insertBefore(li, el.log.firstChild);
    while (el.log.childElementCount > LOG_CAP) el.log.removeChild(el.log.lastElementChild);
    setTimeout(function () {
      li.classList.remove("fresh");
    }, 1300);
    updateLogCount();
  }

  function updateLogCount() {
    const n = el.log.childElementCount;
    el.logCount.textContent = String(n);
    el.logEmpty.hidden = n > 0;
  }

  // ---------------------------------------------------------------- publish

  function setPublishResult(kind, text, receivers) {
    el.publishResult.className = "result " + kind;
    el.publishResult.textContent = text;
    if (receivers === undefined) delete el.publishResult.dataset.receivers;
    else el.publishResult.dataset.receivers = String(receivers);
    el.publishResult.dataset.status = kind;
  }

  async function publish(ev) {
    ev.preventDefault();
    const channel = el.publishChannel.value.trim();
    const message = el.publishMessage.value;
    if (!channel) {
      setPublishResult("error", "A channel is required.");
      el.publishChannel.focus();
      return;
    }
    el.publishBtn.disabled = true;
    setPublishResult("pending", "Publishing\u2026");
    try {
      const res = await fetch("/publish", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ channel: channel, message: message }),
      });
      let body = null;
      try {
        body = await res.json();
      } catch (err) {
        body = null;
      }
      if (res.ok && body && typeof body.receivers === "number") {
        const n = body.receivers;
        setPublishResult("ok", "Published to \u201c" + channel + "\u201d: " + n + (n === 1 ? " receiver" : " receivers"), n);
      } else {
        const code = body && body.error ? body.error : "HTTP " + res.status;
        const text = body && body.message ? body.message : res.statusText || "request failed";
        setPublishResult("error", "Error " + code + ": " + text);
      }
    } catch (err) {
      setPublishResult("error", "Network error: " + (err && err.message ? err.message : String(err)));
    } finally {
      el.publishBtn.disabled = false;
    }
  }

  // ---------------------------------------------------------------- wiring

  el.subscribeForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    subscribe("channel", el.channelInput);
  });
  el.psubscribeForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    subscribe("pattern", el.patternInput);
  });
  el.publishForm.addEventListener("submit", publish);
  el.publishMessage.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) el.publishForm.requestSubmit();
  });
  el.clearLog.addEventListener("click", function () {
    el.log.replaceChildren();
    updateLogCount();
  });
  if (location.host) el.curlHost.textContent = location.host;

  renderSubscriptions();
  updateLogCount();
  connect();
})();
