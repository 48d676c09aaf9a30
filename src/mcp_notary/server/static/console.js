// mcp-notary console: a little progressive enhancement. Every page works without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Whole table rows open the event.
  for (const row of document.querySelectorAll("tr[data-href]")) {
    row.addEventListener("click", (event) => {
      if (event.target.closest("a, button, input, select")) return;
      window.location.href = row.dataset.href;
    });
  }

  // Filters take effect as soon as a select changes.
  const filters = document.querySelector("form.filters");
  if (filters) {
    for (const select of filters.querySelectorAll("select")) {
      select.addEventListener("change", () => filters.requestSubmit());
    }
    // Leave empty fields out of the URL, so links stay short and shareable.
    filters.addEventListener("submit", () => {
      for (const field of filters.querySelectorAll("input, select")) {
        if (!field.value || (field.name === "sort" && field.value === "newest") ||
            (field.name === "limit" && field.value === "50")) field.disabled = true;
      }
    });
  }

  const back = document.querySelector("a[data-back]");
  if (back && document.referrer && new URL(document.referrer).origin === location.origin) {
    back.addEventListener("click", (event) => { event.preventDefault(); history.back(); });
  }

  // "Verify now" runs the full verification through the API (same session, same audit).
  const button = document.getElementById("verify-now");
  const result = document.getElementById("verify-result");
  if (button && result) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      button.textContent = "Verifying…";
      try {
        const response = await fetch("/api/verify", { credentials: "same-origin" });
        const body = await response.json();
        if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
        const cls = body.exit_status === 0 ? "ok" : body.exit_status === 2 ? "warn" : "bad";
        result.replaceChildren();
        const p = document.createElement("p");
        const badge = document.createElement("span");
        badge.className = "badge badge-" + cls;
        badge.textContent = body.result;
        p.append(badge, ` ${body.events} events in ${body.streams} streams, ` +
          `${body.findings.length} finding(s) — just now`);
        result.append(p);
        if (body.findings.length) {
          const list = document.createElement("ul");
          for (const f of body.findings.slice(0, 20)) {
            const item = document.createElement("li");
            item.className = "mono small";
            item.textContent = `${f.kind}: ${f.stream}${f.seq ? " seq " + f.seq : ""}: ${f.detail}`;
            list.append(item);
          }
          result.append(list);
        }
      } catch (error) {
        result.textContent = "Verification failed: " + error.message;
      } finally {
        button.disabled = false;
        button.textContent = "Verify now";
      }
    });
  }
});
