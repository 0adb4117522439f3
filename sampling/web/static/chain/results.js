// The results clerk: dry run, import, row report (page and CSV), held results resolved.
"use strict";
(() => {
  const { t, el, ok, hm, guarded, PAGE, refuse } = window.chain;
  const base = "/v1/rounds/" + encodeURIComponent(PAGE.round);
  const $ = (id) => document.getElementById(id);
  const STATUSES = ["stored", "duplicate", "held", "orphan", "refused"];
  let checked = null; // the text that passed a dry run

  async function upload(text, dry) {
    const resp = await fetch(base + "/results/file?dry_run=" + (dry ? "true" : "false"), {
      method: "POST", body: text, credentials: "same-origin",
      headers: { "X-CSRF-Token": window.csrfToken(), "Content-Type": "text/plain; charset=utf-8", Accept: "application/json" },
    });
    const data = await resp.json();
    if (!resp.ok) { const err = new Error(data.detail); err.problem = data; throw err; }
    return data;
  }

  const why = (r) => r.reason || t("why." + r.status);

  function csv(rep) {
    const quote = (v) => '"' + String(v ?? "").replaceAll('"', '""') + '"';
    const lines = ["row,tube,status,reason"].concat(rep.rows.map((r) => [r.row, r.tube, r.status, why(r)].map(quote).join(",")));
    return new Blob(["\ufeff" + lines.join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" });
  }

  function show(rep) {
    $("report-card").hidden = false;
    $("report-title").textContent = rep.dry_run ? t("results.report_dry") : t("results.report_real");
    $("report-title").className = rep.dry_run ? "warn" : "good";
    const figure = (label, n, id) => el("div", { class: "figure", "data-count": id },
      el("div", { class: "label" }, label), el("div", { class: "big" }, String(n)));
    $("report-counts").replaceChildren(figure(t("results.rows_in"), rep.rows_in, "rows_in"),
      ...STATUSES.map((s) => figure(t("status." + s), rep[s], s)));
    $("report").querySelector("tbody").replaceChildren(...rep.rows.map((r) =>
      el("tr", { class: r.status, "data-row": String(r.row) }, el("td", { class: "num" }, String(r.row)),
        el("td", { class: "code" }, r.tube), el("td", {}, t("status." + r.status)), el("td", {}, why(r)))));
    $("report-csv").href = URL.createObjectURL(csv(rep));
  }

  async function text() {
    const f = $("file").files[0];
    return f ? await f.text() : "";
  }

  $("file").addEventListener("change", () => { checked = null; $("real-btn").disabled = true; });
  $("dry-btn").addEventListener("click", () => guarded($("dry-btn"), async () => {
    const body = await text();
    const rep = await upload(body, true);
    show(rep);
    checked = body;
    $("real-btn").disabled = false;
  }));
  $("real-btn").addEventListener("click", () => guarded($("real-btn"), async () => {
    const body = await text();
    if (body !== checked) { ok(t("results.need_dry")); return; }
    show(await upload(body, false));
    $("real-btn").disabled = true;
    await held();
  }));

  function value(r) {
    if (!r) return t("results.none");
    const ct = r.outcome === "positive" ? " (ORF1ab " + (r.ct_orf1ab ?? "–") + ", N " + (r.ct_n ?? "–") + ")" : "";
    return t("outcome." + r.outcome) + ct + " · " + r.lab + " · " + hm(r.tested_at / 1000);
  }

  function card(c) {
    const name = "d-" + c.tube;
    const choice = (v, label, detail) => el("label", { class: "choice" },
      el("input", { type: "radio", name, value: v }), " ", label, detail ? el("div", { class: "big-value" }, detail) : "");
    const reason = el("textarea", { rows: 2, className: "reason" });
    const go = el("button", { type: "button" }, t("results.resolve"));
    const node = el("div", { class: "household held-case", "data-tube": c.tube },
      el("div", { class: "addr code" }, c.tube),
      el("div", { class: "cols" },
        el("div", {}, el("h3", {}, t("results.stored_value")), choice("keep", t("results.keep"), value(c.stored))),
        ...c.held.map((h) => el("div", {}, el("h3", {}, t("results.held_value")), choice("held:" + h.value, t("results.take"), value(h.result))))),
      el("div", {}, choice("retest", t("results.retest"))),
      el("label", {}, t("results.reason")), reason, el("p", {}, go));
    go.addEventListener("click", () => guarded(go, async () => {
      const picked = node.querySelector("input[type=radio]:checked");
      const v = picked ? picked.value : "";
      const decision = v.startsWith("held:") ? "held" : v;
      const body = { decision, reason: reason.value, held: c.held.map((h) => h.value), stored: c.stored_value };
      if (decision === "held") body.value = v.slice(5);
      const done = await api("POST", base + "/results/held/" + c.tube + "/resolve", body);
      ok(t("results.resolved", { tube: c.tube, decision: t("results." + (decision === "held" ? "take" : decision)) }));
      void done;
      await held();
    }));
    return node;
  }

  async function held() {
    const list = await api("GET", base + "/results/held");
    const tubes = [...new Set(list.map((h) => h.tube))];
    const cases = await Promise.all(tubes.map((tube) => api("GET", base + "/results/held/" + tube)));
    $("no-held").hidden = cases.length > 0;
    $("held").replaceChildren(...cases.map(card));
  }

  held().catch(refuse);
})();
