// The lab's intake desk: receive, scan tubes, live lists, close, summary.
"use strict";
(() => {
  const { t, el, ok, nextOp, guarded, PAGE, refuse } = window.chain;
  const base = "/v1/rounds/" + encodeURIComponent(PAGE.round);
  const $ = (id) => document.getElementById(id);
  let box = null;

  function where(issue) {
    if (issue.where === "other_box" && issue.other_box) return t("intake.belongs", { where: issue.other_box });
    return t("intake.belongs", { where: t("where." + issue.where) });
  }

  function rows(id, items, cls, extra) {
    $(id).replaceChildren(...items.map((i) => el("tr", { class: cls, "data-tube": i.tube },
      el("td", { class: "code" }, i.tube), el("td", { class: "num" }, String(i.residents)),
      el("td", {}, extra ? extra(i) : ""))));
  }

  async function refresh() {
    if (!box) return;
    const view = await api("GET", base + "/boxes/" + box);
    const d = await api("GET", base + "/boxes/" + box + "/discrepancies");
    $("intake-card").hidden = false;
    $("cur-box").textContent = box;
    $("cur-state").textContent = t("state." + view.state);
    $("cur-state").className = "state " + view.state;
    $("n-expected").textContent = view.contents.length;
    $("n-scanned").textContent = d.received;
    $("n-missing").textContent = d.missing.length;
    $("n-extra").textContent = d.extra.length;
    $("n-damaged").textContent = d.damaged.length;
    const missing = new Set(d.missing.map((m) => m.tube));
    rows("l-expected", view.contents, "", (c) => (missing.has(c.tube) ? "…" : "✔"));
    rows("l-missing", d.missing, "missing");
    rows("l-extra", d.extra, "extra", where);
    rows("l-damaged", d.damaged, "damaged", (i) => t("cond." + i.condition));
    const closed = view.state === "intake_closed";
    $("tube-form").hidden = closed;
    $("close-btn").hidden = closed;
    $("summary-card").hidden = !closed;
    if (closed) summary(d);
  }

  function summary(d) {
    $("affected").textContent = t("intake.affected", { n: String(d.residents_affected) });
    const line = (i, kind) => el("tr", { class: kind, "data-tube": i.tube },
      el("td", { class: "code" }, i.tube), el("td", {}, t("intake." + kind)),
      el("td", { class: "num" }, String(i.residents)), el("td", { class: "code" }, i.refs.join(" ")),
      el("td", {}, kind === "extra" ? where(i) : (i.condition ? t("cond." + i.condition) : "")));
    $("summary").querySelector("tbody").replaceChildren(
      ...d.missing.map((i) => line(i, "missing")), ...d.extra.map((i) => line(i, "extra")),
      ...d.damaged.map((i) => line(i, "damaged")));
  }

  $("recv-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded($("recv-btn"), async () => {
      const code = $("recv-code").value.trim();
      await api("POST", base + "/boxes/" + encodeURIComponent(code) + "/receive", nextOp("recv"));
      box = code;
      await refresh();
      watch();
      ok(t("intake.received", { box }));
      $("tube-code").focus();
    });
  });

  $("tube-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("tube-code");
    guarded($("tube-btn"), async () => {
      const tube = input.value.trim();
      input.value = "";
      await api("POST", base + "/boxes/" + box + "/intake",
        { ...nextOp("intake"), tube, condition: $("tube-cond").value });
      $("tube-cond").value = "ok";
      await refresh();
      ok(t("intake.scanned_tube", { tube }));
    }).finally(() => input.focus());
  });

  $("close-btn").addEventListener("click", () => guarded($("close-btn"), async () => {
    await api("POST", base + "/boxes/" + box + "/intake/close", nextOp("close"));
    await refresh();
    ok(t("intake.closed", { box }));
  }));

  // Live: the server says when the box changed (a scan here or at another desk).
  let source = null;
  function watch() {
    if (source) source.close();
    source = new EventSource("/ui/intake/" + encodeURIComponent(box) + "/events?round=" + encodeURIComponent(PAGE.round));
    source.addEventListener("changed", () => refresh().catch(() => {}));
    source.addEventListener("signout", () => window.location.assign("/ui/login?expired=1&next=/ui/intake"));
  }

  if (PAGE.box) { box = PAGE.box; refresh().then(watch).catch(refuse); }
})();
