// The sealer's desk: open, scan tubes in, count, seal, print, hand over.
"use strict";
(() => {
  const { t, el, ok, clearBanner, nextOp, hm, guarded, PAGE } = window.chain;
  const base = "/v1/rounds/" + encodeURIComponent(PAGE.round);
  const $ = (id) => document.getElementById(id);
  let box = null;

  function show(view) {
    box = view.box;
    $("box-card").hidden = false;
    $("cur-box").textContent = view.box;
    $("cur-state").textContent = t("state." + view.state);
    $("cur-state").className = "state " + view.state;
    $("cur-tubes").textContent = view.tubes;
    $("cur-samples").textContent = view.samples;
    const sealed = view.state !== "open";
    $("tube-form").hidden = sealed;
    $("seal-card").hidden = sealed;
    $("after-card").hidden = !sealed;
    if (view.lab) { $("seal-lab").value = view.lab; }
    if (sealed) {
      $("manifest-link").href = base + "/boxes/" + view.box + "/manifest.pdf";
      $("box-barcode").src = "/ui/barcode/" + view.box + ".svg";
      $("box-barcode").alt = view.box;
    }
    const rows = (view.contents || []).map((c, i) =>
      el("tr", { "data-tube": c.tube },
        el("td", {}, String(i + 1)), el("td", { class: "code" }, c.tube),
        el("td", { class: "num" }, String(c.residents)), el("td", {}, hm(c.boxed_at)),
        el("td", {}, t("state.boxed"))));
    $("tube-table").querySelector("tbody").replaceChildren(...rows.reverse());
  }

  async function reload(code) {
    const view = await api("GET", base + "/boxes/" + encodeURIComponent(code));
    show(view);
    return view;
  }

  $("open-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded($("open-btn"), async () => {
      const code = $("box-code").value.trim();
      await api("POST", base + "/boxes", { ...nextOp("open"), box: code, lab: $("box-lab").value.trim() });
      await reload(code);
      ok(t("sealer.opened", { box: box }));
      $("tube-code").focus();
    });
  });
  $("resume-btn").addEventListener("click", () =>
    guarded($("resume-btn"), async () => { clearBanner(); await reload($("box-code").value.trim()); }));

  $("tube-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("tube-code");
    guarded($("add-btn"), async () => {
      const tube = input.value.trim();
      input.value = "";
      const got = await api("POST", base + "/boxes/" + box + "/tubes", { ...nextOp("add"), tube });
      const view = await reload(box);
      const mine = view.contents.find((c) => c.tube === got.tube);
      ok(t("sealer.added", { tube: got.tube, n: String(mine ? mine.residents : "?") }));
    }).finally(() => input.focus());
  });

  $("seal-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded($("seal-btn"), async () => {
      await api("POST", base + "/boxes/" + box + "/seal", {
        ...nextOp("seal"),
        tubes: Number($("count-tubes").value || "0"),
        samples: Number($("count-samples").value || "0"),
        lab: $("seal-lab").value.trim(),
      });
      await reload(box);
      ok(t("sealer.sealed", { box }));
    });
  });

  $("hand-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded($("hand-btn"), async () => {
      const courier = $("courier-id").value.trim();
      await api("POST", base + "/boxes/" + box + "/handover", { ...nextOp("hand"), courier });
      await reload(box);
      ok(t("sealer.handed", { courier }));
    });
  });

  if (PAGE.box) { $("box-code").value = PAGE.box; reload(PAGE.box).catch(window.chain.refuse); }
})();
