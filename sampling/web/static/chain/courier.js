// The courier: pick up by scanning, see own boxes and their delivery.
"use strict";
(() => {
  const { t, el, ok, nextOp, hm, guarded, PAGE, refuse } = window.chain;
  const base = "/v1/rounds/" + encodeURIComponent(PAGE.round);
  const $ = (id) => document.getElementById(id);

  async function refresh() {
    const boxes = await api("GET", base + "/courier/boxes");
    $("none").hidden = boxes.length > 0;
    $("mine").querySelector("tbody").replaceChildren(...boxes.map((b) => {
      const state = b.state === "sealed" ? "handed_over" : b.state;
      const since = b.received_at || b.picked_up_at || b.handed_at;
      return el("tr", { "data-box": b.box },
        el("td", { class: "code" }, b.box),
        el("td", {}, el("span", { class: "state " + b.state }, t("state." + state))),
        el("td", { class: "hide-narrow" }, b.site), el("td", {}, b.lab),
        el("td", { class: "num hide-narrow" }, String(b.tubes)),
        el("td", {}, hm(since)));
    }));
  }

  $("pick-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("pick-code");
    guarded($("pick-btn"), async () => {
      const box = input.value.trim();
      await api("POST", base + "/boxes/" + encodeURIComponent(box) + "/pickup",
        { ...nextOp("pick"), place: $("pick-place").value.trim() });
      input.value = "";
      ok(t("courier.picked", { box }));
      await refresh();
    }).finally(() => input.focus());
  });

  refresh().catch(refuse);
  setInterval(() => refresh().catch(() => {}), 5000);
})();
