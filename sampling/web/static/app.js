// The pages' one helper: call the JSON API with the sign-in cookie and, on a
// change, the double-submit CSRF header the server checks (X-CSRF-Token equal to
// the sampling_csrf cookie). htmx requests get the same header.
"use strict";

function csrfToken() {
  const row = document.cookie.split("; ").find((c) => c.startsWith("sampling_csrf="));
  return row ? decodeURIComponent(row.slice("sampling_csrf=".length)) : "";
}

// api("POST", "/v1/rounds/r1/tubes", {...}) -> the parsed JSON body; throws an
// Error carrying the RFC 9457 problem (err.problem) when the answer is not 2xx.
// A 401 (sign-in expired or revoked) sends the browser to the login page.
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await resp.json() : await resp.text();
  if (resp.status === 401) {
    window.location.assign("/ui/login?expired=1&next=" + encodeURIComponent(location.pathname));
  }
  if (!resp.ok) {
    const err = new Error((data && data.detail) || resp.statusText);
    err.status = resp.status;
    err.problem = data;
    throw err;
  }
  return data;
}

document.addEventListener("htmx:configRequest", (ev) => {
  ev.detail.headers["X-CSRF-Token"] = csrfToken();
});

window.api = api;
window.csrfToken = csrfToken;
