// The dashboard: the breaker's events read as a stream (fetch, because
// EventSource cannot send the token), /metrics and the snapshot polled
// once a second, the last two minutes drawn as plain SVG. The token lives
// in this tab's session storage and travels only in the Authorization
// header, to this origin.
"use strict";

const SPAN_MS = 120000;
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem("adminToken");
const auth = () => ({ Authorization: "Bearer " + token() });

const history = []; // {t, created, refused, errors}
const states = []; // {t, state}
const marks = []; // {t, label}
let previous = null; // the last /metrics sample
let lastFaults = null;
let baseline = null; // the audit's starting counts
let running = false;

// --- the token -----------------------------------------------------------

// A token refused (the services restarted with another): ask again.
function checked(answer) {
  if (answer.status === 401) {
    sessionStorage.removeItem("adminToken");
    $("login-error").textContent = "The token was refused (401).";
    $("login").hidden = false;
    $("board").hidden = true;
    throw new Error("401");
  }
  return answer;
}

async function open() {
  const answer = await fetch("/admin/breaker", { headers: auth() });
  if (answer.status === 401 || answer.status === 404) {
    sessionStorage.removeItem("adminToken");
    $("login-error").textContent = answer.status === 401
      ? "The token was refused (401)."
      : "The admin API is off: start order-service with ADMIN_TOKEN.";
    $("login").hidden = false;
    return;
  }
  $("login").hidden = true;
  $("board").hidden = false;
  if (!running) {
    running = true;
    follow();
    poll();
    setInterval(poll, 1000);
  }
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("adminToken", $("token").value);
  $("token").value = "";
  $("login-error").textContent = "";
  open();
});

// --- the breaker's events --------------------------------------------------

async function follow() {
  for (;;) {
    try {
      const answer = checked(await fetch("/admin/breaker/events", { headers: auth() }));
      if (!answer.ok) throw new Error("events: " + answer.status);
      $("link").textContent = "live";
      const reader = answer.body.getReader();
      const text = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += text.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          event(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (e) {
      $("link").textContent = "reconnecting (" + e.message + ")";
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function event(block) {
  const data = block.split("\n").filter((l) => l.startsWith("data:"))
    .map((l) => l.slice(5).trim()).join("\n");
  if (!data) return; // a keep-alive comment
  const e = JSON.parse(data);
  if (e.kind === "state") {
    showState(e.status.state, e.status.mode, e.at_ms);
  } else if (e.kind === "transition") {
    showState(e.to, null, e.at_ms);
    const item = document.createElement("li");
    item.textContent = new Date(e.at_ms).toLocaleTimeString() + "  " + e.from +
      " → " + e.to + "  (" + reason(e.reason) + "; window " + e.window_calls +
      " calls, " + e.window_failures + " failed)";
    $("transitions").prepend(item);
  }
}

function reason(r) {
  switch (r.kind) {
    case "consecutive_failures": return r.failures + " consecutive failures";
    case "failure_ratio": return r.failures + " of " + r.calls + " calls failed";
    case "open_time_elapsed": return "open time over, probing";
    case "trial_failed": return "a trial failed";
    case "trial_timed_out": return "a trial timed out";
    case "trials_succeeded": return r.trials + " trials succeeded";
    case "mode_changed": return "operator: " + r.mode;
    default: return r.kind;
  }
}

function showState(state, mode, at) {
  const badge = $("breaker-state");
  badge.textContent = state.replace("_", "-");
  badge.className = "state " + state;
  if (mode) $("breaker-mode").textContent = "mode " + mode;
  states.push({ t: at, state });
}

document.querySelectorAll("[data-mode]").forEach((button) =>
  button.addEventListener("click", async () => {
    const answer = await fetch("/admin/breaker", {
      method: "PUT",
      headers: { ...auth(), "Content-Type": "application/json" },
      body: JSON.stringify({ mode: button.dataset.mode }),
    });
    $("mode-answer").textContent = answer.ok ? "" : "refused: " + answer.status;
  }));

// --- payment's faults --------------------------------------------------------

async function setFaults(faults) {
  const answer = await fetch("/admin/payment/faults", {
    method: "PUT",
    headers: { ...auth(), "Content-Type": "application/json" },
    body: JSON.stringify(faults),
  });
  const said = answer.ok ? "" : " " + (await answer.text());
  $("fault-answer").textContent = answer.ok ? "set" : "refused: " + answer.status + said;
}

$("fault-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setFaults({ error_pct: Number($("error-pct").value), delay_ms: Number($("delay-ms").value) });
});
$("clear-faults").addEventListener("click", () => setFaults({ error_pct: 0, delay_ms: 0 }));

// --- the figures ---------------------------------------------------------------

function parse(text) {
  const samples = new Map();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    if (!samples.has(m[1])) samples.set(m[1], []);
    samples.get(m[1]).push({ labels, value: Number(m[3]) });
  }
  return samples;
}

function total(samples, name, match = () => true) {
  return (samples.get(name) || []).filter((s) => match(s.labels))
    .reduce((sum, s) => sum + s.value, 0);
}

const orders = (l) => l.route === "/orders" && l.method === "POST";
function counts(s) {
  const status = (code) => total(s, "http_server_requests_total", (l) => orders(l) && code(l.status));
  return {
    t: Date.now(),
    created: status((c) => c === "201"),
    declined: status((c) => c === "402"),
    answered: status(() => true),
    breaker: total(s, "payment_attempts_total", (l) => l.outcome === "circuit_open"),
    bulkhead: total(s, "payment_attempts_total", (l) => l.outcome === "bulkhead_full"),
    pending: total(s, "orders_total", (l) => l.status === "pending"),
    failed5xx: status((c) => c.startsWith("5")),
    retries: total(s, "payment_retries_total"),
    budget: total(s, "payment_retry_budget_exhausted_total"),
    completed: total(s, "orders_total", (l) => l.status === "completed") +
      total(s, "reconcile_attempts_total", (l) => l.outcome === "completed"),
    buckets: (s.get("http_server_request_duration_seconds_bucket") || [])
      .filter((b) => orders(b.labels)),
  };
}

// The quantile q of the requests between two samples of the histogram.
function quantile(now, before, q) {
  const by = new Map();
  for (const b of now.buckets) by.set(b.labels.le, (by.get(b.labels.le) || 0) + b.value);
  for (const b of before.buckets) by.set(b.labels.le, (by.get(b.labels.le) || 0) - b.value);
  const bound = (le) => (le === "+Inf" ? Infinity : Number(le));
  const les = [...by.keys()].sort((a, b) => bound(a) - bound(b));
  const n = by.get("+Inf") || 0;
  if (n <= 0) return null;
  const le = les.find((l) => by.get(l) >= q * n);
  return le === "+Inf" ? "> " + les[les.length - 2] * 1000 + " ms" : "≤ " + le * 1000 + " ms";
}

async function poll() {
  try {
    const [metrics, snapshot, breaker] = await Promise.all([
      fetch("/metrics").then((r) => r.text()),
      fetch("/admin/dashboard/snapshot", { headers: auth() }).then((r) => checked(r).json()),
      fetch("/admin/breaker", { headers: auth() }).then((r) => checked(r).json()),
    ]);
    const s = parse(metrics);
    const now = counts(s);
    if (previous) figures(now, previous);
    previous = now;
    gauges(s, snapshot, breaker);
    audit(now, snapshot, s);
    draw();
  } catch (e) {
    $("link").textContent = "polling failed (" + e.message + ")";
  }
}

function figures(now, before) {
  const dt = (now.t - before.t) / 1000;
  const rate = (k) => Math.max(0, now[k] - before[k]) / dt;
  const show = (id, v) => { $(id).textContent = v.toFixed(v < 10 ? 1 : 0); };
  const answered = rate("answered");
  const refused = rate("breaker") + rate("bulkhead");
  const errors = Math.max(0, rate("failed5xx") - refused);
  show("rate-created", rate("created"));
  show("rate-declined", rate("declined"));
  show("rate-breaker", rate("breaker"));
  show("rate-bulkhead", rate("bulkhead"));
  show("rate-pending", rate("pending"));
  show("rate-errors", errors);
  show("retries", rate("retries"));
  show("budget", rate("budget"));
  const share = answered > 0 ? (100 * (answered - rate("created")) / answered) : 0;
  $("error-rate").textContent = share.toFixed(0) + " %";
  const p50 = quantile(now, before, 0.5), p99 = quantile(now, before, 0.99);
  $("latency").textContent = p50 ? p50 + " / " + p99 : "–";
  history.push({ t: now.t, created: rate("created"), refused, errors: errors + rate("declined") });
}

function gauges(s, snapshot, breaker) {
  const g = (name) => total(s, name);
  $("bulkhead").textContent = g("bulkhead_in_use") + " of " + g("bulkhead_max");
  $("waiting").textContent = g("bulkhead_waiting");
  $("keys").textContent = g("idempotency_keys_in_flight");
  $("pending").textContent = g("reconciler_pending_orders");
  $("served-by").textContent = "served by " + snapshot.replica + " · store: " + snapshot.store +
    (snapshot.store === "postgresql" ? " (pending orders and keys: every replica's)" : "");
  $("breaker-window").textContent = "window " + breaker.window_calls + " calls, " +
    breaker.window_failures + " failed · " + breaker.consecutive_failures + " consecutive failures" +
    (breaker.next_probe_in_ms != null ? " · next probe in " + (breaker.next_probe_in_ms / 1000).toFixed(1) + " s" : "");
  const p = snapshot.payment;
  const faults = p.faults ? JSON.stringify(p.faults) : null;
  $("faults").textContent = p.error ? "payment-service unreachable: " + p.error
    : (faults || "controls off: start order-service with PAYMENT_ADMIN_TOKEN") +
      " · faults injected so far: " + p.faults_injected;
  $("fault-form").hidden = !p.controls;
  if (faults && lastFaults !== null && faults !== lastFaults) marks.push({ t: Date.now(), label: faults });
  lastFaults = faults;
}

// What the audit would say, over what happened while this page was open:
// every charge has its completed order, give or take those in flight.
function audit(now, snapshot, s) {
  const charges = snapshot.payment.ledger_charges;
  if (charges == null) { $("audit").textContent = "payment's ledger cannot be read now"; return; }
  const open = total(s, "reconciler_pending_orders") + total(s, "bulkhead_in_use");
  if (!baseline) baseline = { charges, completed: now.completed, open };
  const charged = charges - baseline.charges;
  const completed = now.completed - baseline.completed;
  const line = "Since this page opened: payment charged " + charged + ", orders completed " +
    completed + " (answered 201, or completed by the reconciler), " + open + " in flight or pending now. ";
  if (snapshot.store === "postgresql") {
    $("audit").textContent = line + "The ledger counts every replica's charges, these orders are this " +
      "replica's: the ledger audit of make load checks them all.";
    return;
  }
  const ok = Math.abs(charged - completed) <= open + baseline.open;
  $("audit").textContent = line + (ok
    ? "Every charge has its order."
    : "Charges and completed orders disagree beyond what is in flight: run the ledger audit (make load).");
  $("audit").className = ok ? "" : "lie";
}

// --- drawing -------------------------------------------------------------------

function node(name, attrs) {
  const n = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  return n;
}

function draw() {
  const now = Date.now(), x = (t) => 600 * (1 - (now - t) / SPAN_MS);
  while (history.length && history[0].t < now - SPAN_MS) history.shift();
  while (states.length > 1 && states[1].t < now - SPAN_MS) states.shift();
  const band = $("band");
  band.replaceChildren();
  const colour = { closed: "#2e7d32", open: "#c62828", half_open: "#ef6c00" };
  states.forEach((s, i) => {
    const from = Math.max(0, x(s.t)), to = i + 1 < states.length ? x(states[i + 1].t) : 600;
    if (to > from) band.append(node("rect", { x: from, y: 0, width: to - from, height: 36, fill: colour[s.state] || "#999" }));
  });
  const rates = $("rates");
  rates.replaceChildren();
  const top = Math.max(1, ...history.map((h) => Math.max(h.created, h.refused, h.errors)));
  for (const [key, stroke] of [["created", "#2e7d32"], ["refused", "#c62828"], ["errors", "#ef6c00"]]) {
    const points = history.map((h) => x(h.t).toFixed(1) + "," + (118 - 110 * h[key] / top).toFixed(1));
    rates.append(node("polyline", { points: points.join(" "), fill: "none", stroke, "stroke-width": 2 }));
  }
  for (const m of marks.filter((m) => m.t > now - SPAN_MS)) {
    for (const svg of [band, rates]) {
      const line = node("line", { x1: x(m.t), x2: x(m.t), y1: 0, y2: 120, stroke: "#1565c0", "stroke-dasharray": "4 3", "stroke-width": 2 });
      line.append(node("title", {}));
      line.lastChild.textContent = m.label;
      svg.append(line);
    }
  }
}

if (token()) open();
