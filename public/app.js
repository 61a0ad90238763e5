// Herald demo page, built on herald.js (one WebSocket to /subscribe that reconnects and
// restores its subscriptions; publishes go over the same socket). Plain script, no build step,
// no external resources. Every piece of data from the network is put on the page with
// textContent (never innerHTML).
(function () {
  "use strict";

  const LOG_CAP = 500;

  // Labels per subscription kind, and the herald.js call that drops one.
  const KINDS = {
    channel: { label: "channel", unsubscribe: "unsubscribe" },
    pattern: { label: "pattern", unsubscribe: "punsubscribe" },
    shard: { label: "shard", unsubscribe: "sunsubscribe" },
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

  let errorTimer = null;
  let countdownTimer = null;

  // One herald.js client for the page: it reconnects with backoff and restores subscriptions.
  const herald = new window.Herald();
  window.heraldClient = herald; // for the console (and the browser tests)

  // ---------------------------------------------------------------- connection state

  function setState(state, detail) {
    el.status.textContent = state;
    el.status.dataset.state = state;
    el.conn.classList.remove("connecting", "open", "reconnecting", "closed");
    el.conn.classList.add(state);
    el.statusDetail.textContent = detail || "";
  }

  function showState(state, info) {
    clearInterval(countdownTimer);
    if (state === "reconnecting" && info.retryAt) {
      const why = info.code === 1001 ? "server restarting \u00b7 " : "";
      const tick = function () {
        const left = Math.max(0, Math.ceil((info.retryAt - Date.now()) / 1000));
        setState("reconnecting", why + "retry in " + left + "s");
      };
      tick();
      countdownTimer = setInterval(tick, 1000);
    } else if (state === "reconnecting") {
      setState("reconnecting", "attempt " + (info.attempt || 1));
    } else {
      setState(state, "");
    }
    renderSubscriptions();
  }

  herald.on("state", showState);
  showState(herald.state === "idle" ? "connecting" : herald.state, {});

  // ---------------------------------------------------------------- incoming

  herald.on("message", addDelivery);
  herald.on("subscribed", renderSubscriptions);
  herald.on("unsubscribed", renderSubscriptions);
  herald.on("gap", function (gap) {
    const name = gap.kind === "pattern" ? gap.pattern : gap.channel;
    addNotice("gap", name, gap.source === "reconnect"
      ? "reconnected: messages published meanwhile were missed"
      : "Herald's Redis link came back: messages published meanwhile were missed");
  });
  herald.on("dropped", function (info) {
    addNotice("dropped", "", info.count + " deliveries dropped (this page was too slow)");
  });
  herald.on("error", function (err) {
    showError((err.code || "error") + ": " + (err.message || "unknown error"));
  });

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
    const call = kind === "pattern" ? herald.psubscribe(names) : herald.subscribe(names);
    call.catch(function () { /* shown by the "error" listener */ });
    input.value = "";
    input.focus();
  }

  function unsubscribe(kind, name) {
    const k = KINDS[kind];
    herald[k ? k.unsubscribe : "unsubscribe"](name).then(renderSubscriptions);
  }

  /** Shows what Herald confirmed on the current connection (herald.active()). */
  function renderSubscriptions() {
    const active = herald.active();
    const items = [];
    Object.keys(active).forEach(function (kind) {
      active[kind].forEach(function (name) { items.push({ kind: kind, name: name }); });
    });
    items.sort(function (a, b) {
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
      const wanted = herald.subscriptions()[s.kind] || [];
      btn.disabled = wanted.indexOf(s.name) < 0; // leaving: waiting for Herald's answer
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

  /** A row in the log that is not a delivery (gap, dropped): class "event", never "delivery". */
  function addNotice(type, name, text) {
    const now = new Date();
    const li = document.createElement("li");
    li.className = "event fresh";
    li.dataset.type = type;
    li.dataset.name = name;
    const time = cell("time", clock(now));
    time.title = now.toISOString();
    const ch = cell("channel", name);
    ch.title = name;
    li.append(time, cell("type", type), ch, cell("pattern", ""), cell("payload", text));
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
    setPublishResult("pending", herald.state === "open" ? "Publishing\u2026" : "Waiting for the connection\u2026");
    try {
      // The page's WebSocket carries the publish ({"op":"publish"}); herald.js matches the answer by id.
      const answer = await herald.publish(channel, message);
      const n = answer.receivers;
      setPublishResult("ok", "Published to \u201c" + channel + "\u201d: " + n + (n === 1 ? " receiver" : " receivers"), n);
    } catch (err) {
      setPublishResult("error", "Error " + (err.code || "error") + ": " + (err.message || String(err)));
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
})();
