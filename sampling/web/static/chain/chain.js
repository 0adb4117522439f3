// Shared by the chain's pages: words, refusal banners, small DOM helpers.
"use strict";

const WORDS = JSON.parse(document.getElementById("words").textContent);
const PAGE = document.getElementById("page").dataset;

function t(key, values) {
  let text = WORDS[key] || key;
  for (const [k, v] of Object.entries(values || {})) text = text.replaceAll("{" + k + "}", v);
  return text;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

// A refusal is a banner across the page: big, red, with what disagrees, until dismissed.
function refuse(err) {
  const box = document.getElementById("banner");
  const p = err.problem || {};
  const head = (p.code && WORDS["refusal." + p.code]) || t("chain.refused");
  box.replaceChildren(
    el("div", { class: "headline" }, "✖ " + head),
    el("div", { class: "detail" }, (p.detail || err.message) +
      (Array.isArray(p.errors) ? " " + p.errors.map((e) => e.message + (e.key ? " (" + e.key + ")" : "")).join("; ") : "")),
    el("button", { type: "button", onclick: () => box.replaceChildren(), class: "dismiss" }, t("chain.dismiss")),
  );
  box.className = "banner refusal";
  box.scrollIntoView({ block: "start" });
}

function ok(message) {
  const box = document.getElementById("banner");
  box.replaceChildren(el("div", { class: "headline" }, "✔ " + message));
  box.className = "banner okay";
}

function clearBanner() {
  const box = document.getElementById("banner");
  box.replaceChildren();
  box.className = "banner";
}

// Operation ids and sequence numbers for this device on this round, kept in the
// browser so a reload continues where it left off (the server refuses reuse).
function nextOp(kind) {
  const key = "seq:" + PAGE.device + ":" + PAGE.round;
  const seq = Math.max(Number(localStorage.getItem(key) || "0"), Number(PAGE.seq || "0")) + 1;
  localStorage.setItem(key, String(seq));
  return { op: kind + "-" + Date.now().toString(36) + "-" + seq, seq };
}

function hm(epoch) {
  if (epoch == null) return "–";
  return new Date(epoch * 1000).toLocaleTimeString(PAGE.lang === "zh" ? "zh-CN" : "en-GB", {
    timeZone: PAGE.tz, hour: "2-digit", minute: "2-digit",
  });
}

async function guarded(button, work) {
  button.disabled = true;
  try { await work(); } catch (err) { refuse(err); } finally { button.disabled = false; }
}

window.chain = { t, el, refuse, ok, clearBanner, nextOp, hm, guarded, PAGE };
