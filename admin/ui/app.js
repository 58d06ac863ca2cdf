// wafcanary status page: polls /ui/state (no token needed: it shows what
// /metrics shows) and drives the rollout through the admin API with the
// token the user enters, kept in this tab's session storage and sent only
// as a bearer header. No framework, no CDN: this file is the whole client.
"use strict";

const tokenKey = "wafcanary-admin-token";
const every = 2000;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function $(id) { return document.getElementById(id); }
function text(id, s) { $(id).textContent = s; }
function num(v) { return typeof v === "number" ? v : (v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : NaN); }
function fmt(v) {
  v = num(v);
  if (!isFinite(v)) return v > 0 ? "∞" : v < 0 ? "-∞" : "–";
  if (v !== 0 && Math.abs(v) < 0.01) return v.toExponential(2);
  return Math.round(v * 10000) / 10000 + "";
}
function dur(s) {
  s = Math.max(0, Math.round(s));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function when(t) { return t ? new Date(t).toLocaleString() : ""; }
function short(v) { return v ? v.slice(0, 12) : "–"; }

function render(data) {
  const st = data.status, hist = data.history || [];
  $("state").dataset.state = st.state;
  text("state", st.state);
  const active = ["shadow", "progressing", "paused"].includes(st.state);
  text("stepline", active ? `step ${st.step + 1} of ${st.steps}` + (st.awaiting_approval ? ` — step ${st.step + 2} waits for approval: Promote one step` : "") : "");
  text("updated", "updated " + new Date().toLocaleTimeString());
  text("share", `candidate on ${st.candidate_percent}% of clients, shadow on ${st.shadow_sample_percent}% of requests`);
  text("baseline", st.baseline ? `${st.baseline.version}  ${st.baseline.path}` : "–");
  text("candidate", st.candidate ? `${st.candidate.version}  ${st.candidate.path}` : "none");
  text("scope", scopeText(st.scope, st.scope_note));
  text("hosts", st.hosts && st.hosts.length ? "the candidate judges only " + st.hosts.join(", ") : "every host");
  const d = st.last_decision;
  text("decision", d ? `${when(d.time)}  ${d.action} by ${byText(d)}: ${d.reason}` : "–");
  text("people", peopleText(st, active));
  renderReplicas(st.fleet);
  renderSteps(st, active);
  renderChecks(d, hist);
  renderJournal(hist);
  $("error").hidden = true;
}

// byText is who took a decision: the identity its credential proved, the
// name the client sent when it differs, and an emergency or a ticket.
function byText(d) {
  let s = d.actor + (d.claimed_actor ? ` (sent as ${d.claimed_actor})` : "");
  if (d.emergency) s += " EMERGENCY";
  if (d.ticket) s += ` [${d.ticket}]`;
  return s;
}

// peopleText says who started the rollout, its ticket, and who may
// approve it (with admin.users).
function peopleText(st, active) {
  if (!active || !st.started_by) return "–";
  let s = "started by " + st.started_by + (st.ticket ? ", ticket " + st.ticket : "");
  if (st.four_eyes) s += "; may approve: " + ((st.approvers || []).join(", ") || "nobody named") + " (four-eyes " + st.four_eyes + ")";
  return s;
}

function scopeText(s, note) {
  const none = note ? "none inferred: " + note + "; every disagreement counts" : "nothing declared: every disagreement counts";
  if (!s) return none;
  const one = (c) => {
    const parts = [];
    if (c.hosts && c.hosts.length) parts.push("host " + c.hosts.join(" or "));
    // exact_paths are matched whole (an @streq exclusion), paths by segments.
    const paths = (c.exact_paths || []).concat((c.paths || []).map((p) => "under " + p));
    if (paths.length) parts.push("path " + paths.join(" or "));
    if (c.rule_ids && c.rule_ids.length) parts.push("rules " + c.rule_ids.join(", "));
    return parts.join(", and ");
  };
  const body = s.clauses && s.clauses.length ? s.clauses.map((c) => "(" + one(c) + ")").join(" or ") : one(s);
  if (!body) return none;
  return body + (s.inferred ? " (inferred from the candidate)" : "");
}

function renderReplicas(f) {
  const box = $("replicas");
  box.replaceChildren();
  if (!f) return;
  const t = el("table", {id: "replicatable"}, el("thead", {}, el("tr", {}, el("th", {}, "replica"), el("th", {}, "baseline"), el("th", {}, "candidate"), el("th", {}, "share"), el("th", {}, ""))));
  const tb = el("tbody");
  for (const r of f.replicas || []) {
    tb.append(el("tr", {}, el("td", {}, r.replica || r.id || ""), el("td", {}, short(r.baseline)), el("td", {}, short(r.candidate)),
      el("td", {}, (r.candidate_percent ?? 0) + "%"), el("td", {}, r.leader ? "leader" : "")));
  }
  t.append(tb);
  box.append(el("h3", {}, `fleet: leader ${f.leader || "none"}` + (f.store_up ? "" : ` — etcd unreachable: ${f.store_error}`)), t);
}

function renderSteps(st, active) {
  const tb = $("steps").tBodies[0];
  tb.replaceChildren();
  const now = new Date(st.now).getTime();
  (st.plan || []).forEach((p, i) => {
    const cur = active && i === st.step;
    let progress = i < st.step && active ? "done" : "";
    if (cur) {
      const elapsed = (now - new Date(st.step_started).getTime()) / 1000;
      // The analysis that advanced into this step counted the one before.
      const d = st.last_decision;
      const judged = d && new Date(d.time) > new Date(st.step_started) ? d.judged || 0 : 0;
      progress = el("span", {}, bar(elapsed / Math.max(p.min_duration_seconds, 1)), ` ${dur(elapsed)} of ${dur(p.min_duration_seconds)}; `,
        bar(judged / Math.max(p.min_requests, 1)), ` ${judged} of ${p.min_requests} requests`);
    }
    if (active && i === st.step + 1 && st.awaiting_approval) progress = "waits for approval";
    else if (p.approval && !(active && i <= st.step)) progress = progress || "needs approval";
    tb.append(el("tr", {class: cur ? "current" : ""}, el("td", {}, i + 1), el("td", {}, p.percent === 0 ? "shadow only" : p.percent + "%"),
      el("td", {}, dur(p.min_duration_seconds)), el("td", {}, p.min_requests), el("td", {}, progress)));
  });
}

function bar(f) {
  const b = el("span", {class: "bar"}, el("span"));
  b.firstChild.style.width = Math.min(100, Math.max(0, f * 100)) + "%";
  return b;
}

function renderChecks(d, hist) {
  const tb = $("checks").tBodies[0];
  tb.replaceChildren();
  const outcomes = d && d.analysis ? d.analysis.outcomes : [];
  if (!outcomes.length) {
    tb.append(el("tr", {}, el("td", {colspan: 7, class: "muted"}, "no analysis yet")));
    return;
  }
  for (const o of outcomes) {
    tb.append(el("tr", {"data-check": o.check}, el("td", {}, o.check + (o.required ? " *" : "")), el("td", {class: o.verdict}, o.verdict),
      el("td", {}, fmt(o.observed)), el("td", {}, `[${fmt(o.lower)}, ${fmt(o.upper)}]`), el("td", {}, fmt(o.limit)),
      el("td", {}, spark(o.check, hist)), el("td", {}, o.reason)));
  }
}

// spark draws a check's upper and lower bounds (blue) and its limit
// (red) over the journalled analyses, oldest left.
function spark(check, hist) {
  const pts = [];
  for (const e of hist.slice().reverse()) {
    const o = e.analysis && e.analysis.outcomes.find((x) => x.check === check);
    if (o) pts.push([num(o.lower), num(o.upper), num(o.limit)]);
  }
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 140 32");
  const finite = pts.flat().filter(isFinite);
  if (pts.length < 2 || !finite.length) return svg;
  const lo = Math.min(...finite), hi = Math.max(...finite), span = hi - lo || 1;
  const y = (v) => 30 - 28 * (Math.min(Math.max(v, lo), hi) - lo) / span;
  const x = (i) => 2 + 136 * i / (pts.length - 1);
  for (const [k, color] of [[0, "#1f6feb"], [1, "#1f6feb"], [2, "#cf222e"]]) {
    const p = document.createElementNS(ns, "polyline");
    p.setAttribute("points", pts.map((v, i) => `${x(i)},${y(isFinite(v[k]) ? v[k] : (v[k] > 0 ? hi : lo))}`).join(" "));
    p.setAttribute("fill", "none");
    p.setAttribute("stroke", color);
    svg.append(p);
  }
  return svg;
}

function renderJournal(hist) {
  const tb = $("journal").tBodies[0];
  tb.replaceChildren();
  const holds = $("holds").checked;
  for (const e of hist) {
    if (!holds && e.action === "hold") continue;
    tb.append(el("tr", {}, el("td", {}, when(e.time)), el("td", {}, e.action), el("td", {}, byText(e)), el("td", {}, e.state),
      el("td", {}, e.step + 1), el("td", {}, e.candidate_percent + "%"), el("td", {}, e.reason)));
  }
}

async function load() {
  try {
    const r = await fetch("/ui/state", {cache: "no-store"});
    if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
    render(await r.json());
  } catch (err) {
    $("error").hidden = false;
    text("error", "cannot read the state: " + err.message + " (retrying)");
  }
  loadBlocks();
  loadExceptions();
}

// errorOf is the message of an API answer that is not 200.
function errorOf(body) {
  try { return JSON.parse(body).error || body; } catch (_) { return body; }
}

// loadBlocks lists the signatures of blocked requests. It needs the
// token: paths and variable names can say more than /metrics does.
async function loadBlocks() {
  const token = sessionStorage.getItem(tokenKey);
  const tb = $("blocks").tBodies[0];
  if (!token) {
    tb.replaceChildren();
    text("blocksnote", "enter the admin token to list blocked requests by signature");
    return;
  }
  try {
    const r = await fetch("/api/v1/blocks?n=50", {cache: "no-store", headers: {"Authorization": "Bearer " + token}});
    const body = await r.text();
    if (!r.ok) {
      tb.replaceChildren();
      text("blocksnote", `blocks: ${r.status}: ${errorOf(body)}`);
      return;
    }
    renderBlocks(JSON.parse(body));
  } catch (err) {
    text("blocksnote", "cannot read the blocks: " + err.message + " (retrying)");
  }
}

const leansText = {false_positive: "hints at a false positive: ", attack: "hints at an attack: "};

function renderBlocks(l) {
  const st = l.store;
  const n = l.signatures.length;
  text("blocksnote", `${n} ${n === 1 ? "signature" : "signatures"} seen most recently, newest first; the store holds ${st.signatures} of ${st.max_signatures} signatures, ` +
    `${st.requests} of ${st.max_requests} requests, ${st.pinned} of ${st.max_pinned} pinned. wafcanary explain and tune take a signature.`);
  const tb = $("blocks").tBodies[0];
  tb.replaceChildren();
  for (const s of l.signatures) {
    const signals = el("ul", {class: "signals"});
    for (const g of s.signals || []) signals.append(el("li", {class: g.leans}, (leansText[g.leans] || "") + g.fact));
    const pin = el("button", {type: "button", class: "pin"}, s.pinned ? "Unpin" : "Pin");
    pin.addEventListener("click", () => pinBlock(s.sig, !s.pinned));
    const rules = (s.rules || []).join(", ") + ((s.targets || []).length ? " on " + s.targets.join(", ") : "");
    const kept = (s.captures || []).map((c) => c.id).join(", ");
    tb.append(el("tr", {"data-sig": s.sig, class: s.pinned ? "pinned" : ""}, el("td", {}, s.sig + (s.pinned ? " (pinned)" : "")),
      el("td", {}, s.host + s.path), el("td", {}, rules, el("div", {class: "muted"}, "kept: " + (kept || "none"))),
      el("td", {}, s.count), el("td", {}, s.clients + (s.clients_more ? " or more" : "")), el("td", {}, when(s.last)),
      el("td", {}, signals), el("td", {}, pin)));
  }
}

// loadExceptions lists the served baseline's exceptions: where each is,
// what it removes and where, who owns it until when, what it still lets
// through, and its status. It needs the token, as the blocks do.
async function loadExceptions() {
  const token = sessionStorage.getItem(tokenKey);
  const tb = $("exceptions").tBodies[0];
  if (!token) {
    tb.replaceChildren();
    text("exceptionsnote", "enter the token to list the baseline's exceptions");
    return;
  }
  try {
    const r = await fetch("/api/v1/exceptions", {cache: "no-store", headers: {"Authorization": "Bearer " + token}});
    const body = await r.text();
    if (!r.ok) {
      tb.replaceChildren();
      text("exceptionsnote", `exceptions: ${r.status}: ${errorOf(body)}`);
      return;
    }
    renderExceptions(JSON.parse(body));
  } catch (err) {
    text("exceptionsnote", "cannot read the exceptions: " + err.message + " (retrying)");
  }
}

function renderExceptions(l) {
  const list = l.exceptions || [];
  const count = (s) => list.filter((e) => e.status === s).length;
  text("exceptionsnote", `${list.length} ${list.length === 1 ? "exception" : "exceptions"} in the served baseline ${l.baseline_version}: ` +
    `${count("dangling")} dangling, ${count("expired")} expired, ${count("stale")} stale. ` +
    "wafcanary exceptions retire ID and renew ID take an ID.");
  const tb = $("exceptions").tBodies[0];
  tb.replaceChildren();
  for (const e of list) {
    const removes = (e.rules || []).join(", ") + ((e.targets || []).length ? " on " + e.targets.join(", ") : "");
    const where = (e.conditions || []).map((c) => `${c.variable} ${c.negated ? "!" : ""}${c.operator} ${c.argument}`).join(" and ") || "every request";
    const meta = [e.owner ? "owner " + e.owner : "no owner", e.expires ? "until " + e.expires : "no expiry"];
    if (e.ticket) meta.push("ticket " + e.ticket);
    let through = "not measured";
    if (e.measured) {
      through = `${e.would_block} of ${e.judged} judged`;
      const rules = (e.would_block_rules || []).map((r) => `${r.id} (x${r.count})`).join(", ");
      if (rules) through += ": rules " + rules;
    }
    const last = e.last_would_block ? el("div", {class: "muted"}, `last ${when(e.last_would_block.time)}: ${e.last_would_block.request_id}`) : "";
    const o = e.origin;
    const origin = !o ? "" : o.before_history ? "before the kept history" : `${o.by} of ${o.baseline}` + (o.actor ? ` by ${o.actor}` : "") + (o.reason ? `: ${o.reason}` : "");
    const dangling = (e.dangling || []).length ? el("div", {class: "muted"}, "names what the ruleset lacks: " + e.dangling.join(", ")) : "";
    tb.append(el("tr", {"data-exception": e.id, class: e.status}, el("td", {}, e.id), el("td", {}, `${e.file}:${e.line}`),
      el("td", {}, removes, dangling), el("td", {}, where), el("td", {}, meta.join(", ")), el("td", {}, through, last),
      el("td", {}, e.status), el("td", {}, origin)));
  }
}

async function pinBlock(sig, pin) {
  const token = sessionStorage.getItem(tokenKey);
  const what = pin ? "pin" : "unpin";
  try {
    const r = await fetch(`/api/v1/blocks/${encodeURIComponent(sig)}/${what}`, {
      method: "POST", headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"}, body: "{}",
    });
    const body = await r.text();
    text("blockresult", r.ok ? `${sig}: ${pin ? "pinned: kept until unpinned" : "unpinned"}` : `${what} ${sig} refused (${r.status}): ${errorOf(body)}`);
  } catch (err) {
    text("blockresult", `${what} ${sig} failed: ${err.message}`);
  }
  loadBlocks();
}

function showToken() {
  text("tokenstate", sessionStorage.getItem(tokenKey) ? "token set for this tab" : "no token: actions are refused");
}

async function act(action, full) {
  const token = sessionStorage.getItem(tokenKey);
  if (!token) {
    text("actionresult", "enter your token first");
    return;
  }
  text("actionresult", action + "…");
  try {
    const r = await fetch("/api/v1/rollout/" + action, {
      method: "POST",
      headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
      body: JSON.stringify({reason: $("reason").value || action + " from the status page", actor: "web", full: !!full, ticket: $("ticket").value.trim()}),
    });
    const body = await r.text();
    if (!r.ok) {
      let msg = body;
      try { msg = JSON.parse(body).error || body; } catch (_) { /* plain text */ }
      text("actionresult", `${action} refused (${r.status}): ${msg}`);
    } else {
      // An undo asked for again (a double click) succeeds and changes
      // nothing; the answer says why.
      let unchanged = "";
      try { unchanged = JSON.parse(body).unchanged || ""; } catch (_) { /* not JSON */ }
      text("actionresult", unchanged ? `${action}: nothing changed: ${unchanged}` : `${action}: done`);
    }
  } catch (err) {
    text("actionresult", `${action} failed: ${err.message}`);
  }
  load();
}

document.addEventListener("DOMContentLoaded", () => {
  $("tokenform").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("token").value.trim();
    if (v) sessionStorage.setItem(tokenKey, v);
    $("token").value = "";
    showToken();
    loadBlocks();
    loadExceptions();
  });
  $("forget").addEventListener("click", () => { sessionStorage.removeItem(tokenKey); showToken(); loadBlocks(); loadExceptions(); });
  for (const b of document.querySelectorAll("#actions button")) b.addEventListener("click", () => act(b.dataset.action, b.dataset.full === "true"));
  $("holds").addEventListener("change", load);
  showToken();
  load();
  setInterval(load, every);
});
