// The grid team's list: households in walking order, re-samples first, outcomes per door.
"use strict";
(() => {
  const { t, el, ok, hm, guarded, PAGE, refuse } = window.chain;
  const grid = document.getElementById("page").dataset.grid;
  const base = "/v1/rounds/" + encodeURIComponent(PAGE.round) + "/doors/" + encodeURIComponent(grid);
  const $ = (id) => document.getElementById(id);
  const OUTCOMES = ["not_home", "refused", "moved", "medical"];
  const key = (r) => [r.building, r.unit, r.household].join("-");

  function group(rows) {
    const out = new Map();
    for (const r of rows) {
      if (!out.has(key(r))) out.set(key(r), { building: r.building, unit: r.unit, household: r.household, people: [] });
      out.get(key(r)).people.push(r);
    }
    return [...out.values()];
  }

  function labels(text) {
    return (text || "").split(";").filter(Boolean).map((l) => el("span", { class: "mark" }, t("label." + l)));
  }

  // Each person's own last outcome: a household outcome is recorded per resident,
  // and a re-sample at the door is one resident's.
  function lastOf(p, last) {
    if (!last) return null;
    const ref = p.rhash ? p.rhash.slice(0, 8) : null;
    return (last.people || []).find((x) => (ref ? x.ref === ref : x.resident === p.resident)) || null;
  }

  function card(hh, last, order) {
    const addr = hh.building + "-" + hh.unit + "-" + hh.household;
    const node = el("div", { class: "household" + (order && order.priority === "urgent" ? " urgent" : ""), "data-household": addr });
    const mine = hh.people.map((p) => lastOf(p, last));
    const people = hh.people.map((p, i) => el("div", { class: "person" },
      p.colour ? el("span", { class: "colour " + p.colour, title: t("colour." + p.colour) }) : "",
      el("strong", {}, p.name || ""), " ", p.phone ? el("a", { href: "tel:" + p.phone }, p.phone) : "", " ",
      p.mark ? el("span", { class: "mark " + p.mark }, t("mark." + p.mark)) : "",
      order ? el("span", { class: "mark door_medical" }, t(order.priority === "urgent" ? "doors.urgent" : "doors.normal")) : "",
      ...labels(p.labels),
      mine[i] && mine[i].outcome
        ? el("div", { class: "hint", "data-last": mine[i].outcome }, t("doors.last", { outcome: t("outcome." + mine[i].outcome), time: hm(mine[i].at) }))
        : ""));
    const tube = el("input", { type: "text", placeholder: t("doors.tube"), autocomplete: "off" });
    const codes = el("textarea", { rows: 2, placeholder: t("doors.codes") });
    const sampled = el("button", { type: "button", "data-outcome": "sampled" }, t("doors.sampled_btn"));
    const buttons = OUTCOMES.map((o) => el("button", { type: "button", class: "secondary", "data-outcome": o }, t("outcome." + o)));
    const send = (outcome, btn, extra) => guarded(btn, async () => {
      const op = "door-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 8);
      const body = { op, building: hh.building, unit: hh.unit, household: hh.household, outcome, ...extra };
      await api("POST", base + "/outcomes", body);
      await refresh();
      ok(t("doors.recorded", { addr, outcome: t("outcome." + outcome) }));
    });
    sampled.addEventListener("click", () => send("sampled", sampled, {
      tube: tube.value.trim(), residents: codes.value.split(/\s+/).filter(Boolean),
      purpose: order ? "resample" : "pool",
    }));
    buttons.forEach((b) => b.addEventListener("click", () => send(b.dataset.outcome, b, {})));
    node.append(el("div", { class: "addr" }, addr + " · " + t("doors.residents", { n: String(hh.people.length) })),
      ...people,
      el("div", { class: "row" }, el("div", { class: "field" }, tube), el("div", { class: "grow" }, codes), sampled),
      el("div", { class: "outcomes" }, ...buttons));
    const settled = (x) => x && (x.outcome === "sampled" || x.outcome === "moved");
    if (!order && mine.length && mine.every(settled)) node.classList.add("done");
    return node;
  }

  async function refresh() {
    const [list, outcomes, orders] = await Promise.all([
      api("GET", base + "?format=json").catch(() => []),
      api("GET", base + "/outcomes"),
      api("GET", base + "/resample").catch(() => []),
    ]);
    const last = new Map(outcomes.households.map((h) => [key(h), h]));
    const open = orders.filter((o) => o.order_state === "open");
    $("resample-card").hidden = open.length === 0;
    $("resample").replaceChildren(...group(open).map((hh) => card(hh, last.get(key(hh)), hh.people[0])));
    const households = group(list);
    $("none").hidden = households.length > 0;
    $("households").replaceChildren(...households.map((hh) => card(hh, last.get(key(hh)), null)));
  }

  refresh().catch(refuse);
})();
