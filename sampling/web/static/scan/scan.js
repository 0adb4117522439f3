// The handheld's sampling flow, offline-first.
//
// Every operation (open a tube, scan a resident, undo, close) is written to
// IndexedDB with its op id, the device's next sequence number in the round and
// the device's time, in ONE transaction, before the page shows it as done. A
// sender then uploads what is queued, in sequence order, through
// POST /v1/rounds/{round}/batches (at most the server's batch limit at a time):
// at once when online, and whenever the network comes back. The server applies
// each op once (op id + sequence number), so a batch resent after a lost answer
// is harmless. A refusal that comes back goes to the "needs attention" list.
// Sequence numbers come from a counter kept in IndexedDB, raised on start to
// the server's highest for the device (GET /v1/rounds/{round}/seq), so no number
// is ever reused across reloads, restarts or a cleared profile.
"use strict";
(() => {
  const cfg = JSON.parse(document.getElementById("scan-config").textContent);
  // A scan shown as done must survive the browser closing or the phone dying:
  // Chromium's default ("relaxed") reports a write done before it reaches disk.
  const STRICT = { durability: "strict" };
  const words = cfg.words;
  const $ = (id) => document.getElementById(id);
  const say = (key, vals) =>
    (words[key] || key).replace(/\{(\w+)\}/g, (_, k) => (vals && k in vals ? vals[k] : ""));
  const DEV = cfg.device;

  // -- IndexedDB ------------------------------------------------------------------
  // ops:  key "device|round|seq(9 digits)" -> the op and its state
  //       (queued | done | refused | resolved), result fields once answered
  // meta: key -> value: "seq|dev|round" (last number used), "last|dev" (last
  //       successful upload, epoch s), "tube|dev|round" (the tube in hand)
  const DBNAME = "sampling-handheld";
  let db = null;
  function openDb() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(DBNAME, 1);
      req.onupgradeneeded = () => {
        const d = req.result;
        const ops = d.createObjectStore("ops", { keyPath: "k" });
        // [device, state]: a paired-again browser keeps the old device's ops apart.
        ops.createIndex("dev_state", ["device", "state"]);
        d.createObjectStore("meta", { keyPath: "k" });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  const done = (tx) =>
    new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  const got = (req) =>
    new Promise((resolve, reject) => {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  const seqKey = (round) => `seq|${DEV}|${round}`;
  const tubeKey = (round) => `tube|${DEV}|${round}`;
  const opKey = (round, seq) => `${DEV}|${round}|${String(seq).padStart(9, "0")}`;

  async function metaGet(k) {
    const row = await got(db.transaction("meta").objectStore("meta").get(k));
    return row ? row.v : undefined;
  }
  async function metaPut(k, v) {
    const tx = db.transaction("meta", "readwrite", STRICT);
    tx.objectStore("meta").put({ k, v });
    await done(tx);
  }
  // Keys sort as "device|round|seq": sequence order within a round.
  const byState = (state) => IDBKeyRange.only([DEV, state]);
  async function opsIn(state, limit) {
    const index = db.transaction("ops").objectStore("ops").index("dev_state");
    const rows = await got(index.getAll(byState(state), limit));
    return rows.sort((a, b) => (a.k < b.k ? -1 : 1));
  }
  async function countIn(state) {
    return got(db.transaction("ops").objectStore("ops").index("dev_state").count(byState(state)));
  }

  function opId() {
    const b = new Uint8Array(8);
    crypto.getRandomValues(b);
    return DEV + "-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  // One transaction: take the next number, store the op and the tube in hand.
  async function record(fields, tubeAfter) {
    const round = state.round;
    const tx = db.transaction(["ops", "meta"], "readwrite", STRICT);
    const meta = tx.objectStore("meta");
    const last = (await got(meta.get(seqKey(round)))) || { v: 0 };
    const seq = last.v + 1;
    const op = {
      k: opKey(round, seq), device: DEV, round, seq, op: opId(),
      at: Date.now() / 1000, state: "queued", ...fields,
    };
    meta.put({ k: seqKey(round), v: seq });
    meta.put({ k: tubeKey(round), v: tubeAfter });
    tx.objectStore("ops").put(op);
    await done(tx);
    return op;
  }

  // -- state of the flow ----------------------------------------------------------
  const state = { round: "", pool: 0, tube: null, online: navigator.onLine };
  // tube: {code, cap, members: [resident...], closed: bool, full: bool}

  function render() {
    const t = state.tube;
    const open = t && !t.closed;
    $("prompt").textContent = open ? say("scan_resident") : say("scan_tube");
    $("tube-code").textContent = t ? t.code : "";
    $("count").textContent = t ? `${t.members.length}/${t.cap}` : "";
    $("tube").classList.toggle("closed", !!(t && t.closed));
    $("undo").disabled = !(t && t.members.length);
    $("close").disabled = !(open && t.members.length);
    document.querySelectorAll(".pool").forEach((b) => {
      b.classList.toggle("on", Number(b.dataset.pool) === state.pool);
    });
  }

  function notice(text, kind) {
    const n = $("notice");
    n.textContent = text;
    n.className = "notice " + (kind || "");
  }

  function showRefusal(status, message) {
    const box = $("refusal");
    box.hidden = false;
    box.querySelector(".r-head").textContent =
      say("refused") + " · " + (words["title_" + status] || status);
    box.querySelector(".r-msg").textContent = message;
    box.querySelector(".r-next").textContent = words["next_" + status] || say("next_default");
  }
  const hideRefusal = () => ($("refusal").hidden = true);

  function showChoices(title, options, onPick) {
    const box = $("choices");
    box.replaceChildren();
    const p = document.createElement("p");
    p.textContent = title;
    box.append(p);
    for (const [label, value] of options) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "choice";
      b.textContent = label;
      b.addEventListener("click", () => {
        box.hidden = true;
        onPick(value);
        focusField();
      });
      box.append(b);
    }
    box.hidden = false;
  }

  // -- what the sampler does --------------------------------------------------------
  async function openTube(code) {
    const cap = state.pool;
    if (state.tube && !state.tube.closed && state.tube.members.length) await closeTube();
    const tube = { code, cap, members: [], closed: false };
    await record({ kind: "open", tube: code, capacity: cap }, tube);
    state.tube = tube;
    notice(say("recorded") + " · " + code, "good");
  }

  async function scanResident(code) {
    const t = state.tube;
    if (!t || t.closed) {
      showRefusal("need_tube", say("need_tube"));
      return;
    }
    const members = [...t.members, code];
    const full = members.length >= t.cap;
    const after = { ...t, members, closed: full, full };
    await record({ kind: "scan", tube: t.code, resident: code }, after);
    state.tube = after;
    notice(full ? say("tube_full") : say("recorded"), "good");
  }

  async function undoLast() {
    const t = state.tube;
    if (!t || !t.members.length) return;
    const last = t.members[t.members.length - 1];
    const after = { ...t, members: t.members.slice(0, -1), closed: false, full: false };
    await record({ kind: "undo", tube: t.code, resident: last }, after);
    state.tube = after;
    notice(say("undone"), "");
  }

  async function closeTube() {
    const t = state.tube;
    if (!t || t.closed || !t.members.length) return;
    const after = { ...t, closed: true };
    await record({ kind: "close", tube: t.code }, after);
    state.tube = after;
    notice(say("tube_closed"), "");
  }

  async function accept(code) {
    const kind = Checks.classify(code);
    hideRefusal();
    if (kind === "tube") await openTube(code);
    else if (kind === "resident") await scanResident(code);
    else if (kind === "box") showRefusal("box", say("is_box"));
    render();
    window.lastShown = performance.now();
    if (window.lastEnter) timings.push(window.lastShown - window.lastEnter);
    await refreshCounts();
    // Offline for sure: the 'online' event starts the upload; a network that is
    // down while the browser thinks it is up fails the fetch and backs off.
    if (navigator.onLine) flush();
  }

  async function typed(text) {
    const found = Checks.check(text);
    $("choices").hidden = true;
    if (!found.code) return;
    if (found.accepted) {
      await accept(found.code);
      return;
    }
    let candidates = found.candidates;
    if (state.online) {
      try {
        const answer = await call("POST", "/v1/codes/check", { code: found.code });
        candidates = answer.candidates || candidates;
      } catch (err) {
        // Offline or refused: the page's own candidates stand.
      }
    }
    notice(say("bad_code") + ": " + found.code, "bad");
    if (candidates.length) {
      showChoices(say("pick"), candidates.map((c) => [c, c]), (c) => accept(c));
    } else {
      showRefusal("garbled_code", say("retype"));
    }
  }

  const timings = []; // ms from Enter to the count shown, per entry

  // -- the sender -----------------------------------------------------------------
  async function call(method, path, body, extra) {
    const headers = { Accept: "application/json", "X-CSRF-Token": csrfToken() };
    const init = { method, headers, credentials: "same-origin", ...(extra || {}) };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    const type = resp.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await resp.json() : null;
    if (!resp.ok) {
      const err = new Error((data && data.detail) || resp.statusText);
      err.status = resp.status;
      err.problem = data || {};
      throw err;
    }
    return data;
  }

  let flushing = false;
  const drains = []; // {ms, batches} of each upload that emptied the queue
  let retryTimer = null;
  let backoff = 500;
  let limit = cfg.maxBatch;

  function wire(o) {
    const w = { op: o.op, seq: o.seq, kind: o.kind, tube: o.tube, at: o.at };
    if (o.resident) w.resident = o.resident;
    if (o.kind === "open") w.capacity = o.capacity;
    return w;
  }

  async function answered(batch, results) {
    const tx = db.transaction(["ops", "meta"], "readwrite", STRICT);
    const store = tx.objectStore("ops");
    const refusals = [];
    results.forEach((res, i) => {
      const o = { ...batch[i], count: res.count, clock: res.clock, sentAt: Date.now() / 1000 };
      if (res.status === "ok") {
        o.state = "done";
      } else {
        o.state = "refused";
        o.status = res.status;
        o.message = res.message;
        refusals.push(o);
      }
      if (res.clock === "untrusted") o.clockWarning = true;
      store.put(o);
    });
    tx.objectStore("meta").put({ k: `last|${DEV}`, v: Date.now() / 1000 });
    await done(tx);
    for (const o of refusals) await undoLocally(o);
    if (refusals.length) {
      const last = refusals[refusals.length - 1];
      showRefusal(last.status, last.message);
      notice("", "");
    }
    if (results.some((r) => r.clock === "untrusted")) notice(say("clock"), "warn");
  }

  // A refused open or scan is taken out of the tube in hand, so the count shown
  // is what the server holds.
  async function undoLocally(o) {
    const t = state.tube;
    if (!t || t.code !== o.tube || o.round !== state.round) return;
    let after = t;
    if (o.kind === "scan") {
      const i = t.members.lastIndexOf(o.resident);
      if (i < 0) return;
      const members = t.members.filter((_, j) => j !== i);
      after = { ...t, members, closed: t.full ? false : t.closed, full: false };
    } else if (o.kind === "open") {
      after = null;
    } else {
      return;
    }
    state.tube = after;
    await metaPut(tubeKey(state.round), after);
    render();
  }

  async function flush() {
    if (flushing) return;
    flushing = true;
    clearTimeout(retryTimer);
    try {
      let started = 0;
      let batches = 0;
      for (;;) {
        // Index order is key order ("device|round|seq"), so the first ones are the oldest.
        const queued = await opsIn("queued", limit);
        if (!queued.length) {
          if (started) drains.push({ ms: performance.now() - started, batches });
          break;
        }
        if (!started) started = performance.now();
        const round = queued[0].round;
        const batch = [];
        for (const o of queued) {
          if (o.round !== round || batch.length >= limit) break;
          batch.push(o);
        }
        let answer;
        try {
          answer = await call("POST", `/v1/rounds/${round}/batches`, { ops: batch.map(wire) });
        } catch (err) {
          if (err.status === 401) {
            notice(say("signin"), "bad");
            return;
          }
          if (err.status && err.status >= 400 && err.status < 500 && ![408, 429].includes(err.status)) {
            // The batch as a whole was refused (a malformed op): find it alone.
            if (batch.length > 1) {
              limit = 1;
              continue;
            }
            await answered(batch, [{ status: err.problem.code || "bad_input", message: err.message, count: 0 }]);
            continue;
          }
          setOnline(false);
          retryTimer = setTimeout(flush, backoff);
          backoff = Math.min(backoff * 2, 8000);
          return;
        }
        limit = cfg.maxBatch;
        backoff = 500;
        batches += 1;
        setOnline(true);
        await answered(batch, answer.results);
        await refreshCounts();
      }
    } finally {
      flushing = false;
      await refreshCounts();
    }
  }

  // -- the status line ------------------------------------------------------------
  const clockFmt = new Intl.DateTimeFormat(cfg.lang === "en" ? "en-GB" : "zh-CN", {
    timeZone: cfg.tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });

  function setOnline(on) {
    state.online = on;
    const net = $("net");
    net.textContent = on ? say("online") : say("offline");
    net.className = "net " + (on ? "on" : "off");
  }

  async function refreshCounts() {
    $("waiting").textContent = String(await countIn("queued"));
    const last = await metaGet(`last|${DEV}`);
    if (last) $("last-upload").textContent = clockFmt.format(new Date(last * 1000));
    const refused = await opsIn("refused");
    $("attention-box").hidden = refused.length === 0;
    $("attention-count").textContent = String(refused.length);
    const list = $("attention");
    list.replaceChildren();
    const label = $("resolve-label").innerHTML;
    for (const o of refused) {
      const li = document.createElement("li");
      li.dataset.op = o.op;
      const what = document.createElement("p");
      what.className = "a-what";
      what.textContent = `${words["title_" + o.status] || o.status} · #${o.seq} ${o.kind} ` +
        `${o.tube}${o.resident ? " · " + o.resident : ""}`;
      const msg = document.createElement("p");
      msg.className = "a-msg";
      msg.textContent = o.message;
      const next = document.createElement("p");
      next.className = "a-next";
      next.textContent = words["next_" + o.status] || say("next_default");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.addEventListener("click", () => resolve(o));
      li.append(what, msg, next, b);
      list.append(li);
    }
  }

  async function resolve(o) {
    const tx = db.transaction("ops", "readwrite", STRICT);
    tx.objectStore("ops").put({ ...o, state: "resolved" });
    await done(tx);
    await refreshCounts();
    focusField();
  }

  // -- photos ---------------------------------------------------------------------
  async function photos(files) {
    if (!files.length) return;
    if (!state.online && !navigator.onLine) {
      notice(say("photo_offline"), "bad");
      return;
    }
    notice(say("photo_sending"), "");
    const form = new FormData();
    const chosen = Array.from(files).slice(0, 5);
    if (chosen.length === 1) form.append("image", chosen[0]);
    else chosen.forEach((f) => form.append("frames", f));
    let result;
    try {
      result = await call("POST", "/v1/decode", form);
    } catch (err) {
      notice(err.message || say("photo_none"), "bad");
      return;
    }
    const valid = (result.codes || []).filter((c) => c.valid && (c.kind === "resident" || c.kind === "tube"));
    if (!valid.length) {
      notice(say("photo_none"), "bad");
      return;
    }
    const code = valid[0].text;
    showChoices(say("photo_found", { code }), [[say("confirm"), code], [say("cancel"), ""]], (c) => {
      if (c) accept(c);
      else notice("", "");
    });
    const first = $("choices").querySelector(".choice");
    if (first) first.classList.add("confirm");
  }

  // -- wiring ---------------------------------------------------------------------
  function focusField() {
    const f = $("code");
    if (document.activeElement !== f) f.focus({ preventScroll: true });
  }

  async function start() {
    db = await openDb();
    const rounds = cfg.rounds;
    const sel = $("round");
    const saved = localStorage.getItem(`round|${DEV}`);
    if (saved && rounds.some((r) => r.id === saved)) sel.value = saved;
    state.round = sel.value;
    const roundPool = () => (rounds.find((r) => r.id === state.round) || { pool: 10 }).pool;
    state.pool = Number(localStorage.getItem(`pool|${DEV}|${state.round}`)) || roundPool();
    state.tube = (await metaGet(tubeKey(state.round))) || null;
    sel.addEventListener("change", async () => {
      state.round = sel.value;
      localStorage.setItem(`round|${DEV}`, state.round);
      state.pool = Number(localStorage.getItem(`pool|${DEV}|${state.round}`)) || roundPool();
      state.tube = (await metaGet(tubeKey(state.round))) || null;
      await syncSeq();
      render();
      focusField();
    });
    document.querySelectorAll(".pool").forEach((b) =>
      b.addEventListener("click", () => {
        state.pool = Number(b.dataset.pool);
        localStorage.setItem(`pool|${DEV}|${state.round}`, String(state.pool));
        render();
        focusField();
      }),
    );
    $("entry").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = $("code");
      const text = f.value;
      f.value = "";
      window.lastEnter = performance.now();
      typed(text);
    });
    $("undo").addEventListener("click", async () => {
      await undoLast();
      render();
      await refreshCounts();
      flush();
      focusField();
    });
    $("close").addEventListener("click", async () => {
      await closeTube();
      render();
      await refreshCounts();
      flush();
      focusField();
    });
    $("photo").addEventListener("change", (ev) => {
      photos(ev.target.files);
      ev.target.value = "";
    });
    $("refusal").addEventListener("click", () => {
      hideRefusal();
      focusField();
    });
    // A hardware scanner types into whatever has focus: keep it on the field.
    document.addEventListener("click", (ev) => {
      if (!ev.target.closest("select, input, .choices")) setTimeout(focusField, 0);
    });
    window.addEventListener("online", () => {
      setOnline(true);
      syncSeq().then(flush);
    });
    window.addEventListener("offline", () => setOnline(false));
    setOnline(navigator.onLine);
    render();
    focusField();
    await syncSeq();
    await refreshCounts();
    flush();
    setInterval(() => flush(), 15000);
    document.body.dataset.ready = "1";
  }

  // Never reuse a number the server has seen (a cleared profile starts at 0).
  async function syncSeq() {
    if (!state.round) return;
    try {
      const seen = await call("GET", `/v1/rounds/${state.round}/seq`);
      const tx = db.transaction("meta", "readwrite", STRICT);
      const meta = tx.objectStore("meta");
      const mine = (await got(meta.get(seqKey(state.round)))) || { v: 0 };
      if (seen.highest > mine.v) meta.put({ k: seqKey(state.round), v: seen.highest });
      await done(tx);
    } catch (err) {
      // Offline: the local counter is the truth until the server answers.
    }
  }

  // For the tests and the bench: what this page recorded.
  window.handheld = {
    ops: async () => {
      const all = await got(db.transaction("ops").objectStore("ops").getAll());
      return all.filter((o) => o.device === DEV);
    },
    flush,
    state,
    drains,
    timings,
    enter: (text) => typed(text),
  };

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/ui/sw.js", { scope: "/ui/" }).catch(() => {});
  }
  start();
})();
