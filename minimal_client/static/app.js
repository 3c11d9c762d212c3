// tokenbroker minimal client: calls the same-origin action endpoints and renders the results.
// No inline script anywhere (CSP: script-src 'self'); every value goes in via textContent.
"use strict";

(function () {
  const timers = new Map();

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function pretty(value) {
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }

  function formatRemaining(seconds) {
    if (seconds <= 0) return "expired";
    const d = Math.floor(seconds / 86400);
    const h = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return (d > 0 ? d + "d " : "") + pad(h) + ":" + pad(m) + ":" + pad(s) + " left";
  }

  function startCountdown(resultId, node, expiresAt) {
    if (timers.has(resultId)) clearInterval(timers.get(resultId));
    timers.delete(resultId);
    if (typeof expiresAt !== "number") {
      node.textContent = "no expiry known";
      return;
    }
    node.dataset.expiresAt = String(expiresAt);
    const tick = () => {
      node.textContent = formatRemaining(Math.round(expiresAt - Date.now() / 1000));
    };
    tick();
    timers.set(resultId, setInterval(tick, 1000));
  }

  function render(target, httpStatus, data) {
    target.replaceChildren();
    const status = data && "status" in data ? data.status : null;
    const head = el("p", "summary");
    head.append("Broker HTTP status: ");
    head.append(el("span", "status", status === null ? "(no response)" : String(status)));
    if (data && data.request_id) {
      head.append(" · X-Request-Id ");
      head.append(el("code", "request-id", data.request_id));
    }
    target.append(head);

    const failed = status === null || status >= 400 || httpStatus >= 400;
    if (failed) {
      const body = data && data.broker_response != null ? data.broker_response
        : (data && data.error != null ? data.error : data);
      const err = el("pre", "error", pretty(body));
      target.append(el("h4", null, "Error, exactly as returned"));
      target.append(err);
    }

    const expiry = el("p", "expiry");
    expiry.append("Expires: ");
    const countdown = el("span", "countdown");
    expiry.append(countdown);
    target.append(expiry);
    startCountdown(target.id, countdown, data ? data.expires_at : null);
    if (data && typeof data.expires_at === "number") {
      expiry.append(" (at ");
      expiry.append(el("time", "expires-at", new Date(data.expires_at * 1000).toISOString()));
      expiry.append(")");
    }

    target.append(el("h4", null, "Claims (decoded, not verified)"));
    const decoded = data ? data.decoded : null;
    target.append(el("pre", "claims", decoded ? pretty(decoded.claims) : "(no token to decode)"));
    if (decoded) {
      target.append(el("h4", null, "JWT header (decoded, not verified)"));
      target.append(el("pre", "jwt-header", pretty(decoded.header)));
    }
    if (!failed && data) {
      const details = el("details", "raw");
      details.append(el("summary", null, "Raw broker response"));
      details.append(el("pre", "broker-response", pretty(data.broker_response)));
      target.append(details);
    }
  }

  async function runAction(button) {
    const target = document.getElementById(button.dataset.result);
    button.disabled = true;
    target.classList.add("busy");
    try {
      const resp = await fetch(button.dataset.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfToken(), "Accept": "application/json" },
      });
      let data = null;
      try { data = await resp.json(); } catch (e) { data = { error: "non-JSON answer", status: resp.status }; }
      if (data && (data.consent_url || data.login_url)) {
        window.location.assign(data.consent_url || data.login_url);
        return;
      }
      render(target, resp.status, data);
    } catch (e) {
      render(target, 0, { status: null, broker_response: { error: "network_error", error_description: String(e) } });
    } finally {
      button.disabled = false;
      target.classList.remove("busy");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("button.action").forEach((button) => {
      button.addEventListener("click", () => runAction(button));
    });
  });
})();
