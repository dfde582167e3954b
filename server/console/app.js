// app.js is the agentaudit console: a few pages over the public HTTP API, read with the user's
// API key. Event content is only ever set as text (textContent), never parsed as HTML, and no
// handler is inline, so the strict Content-Security-Policy the server sends holds.
import { verifyBundle, VerifyError } from "./verify.js";

const KEY = "agentaudit.key";
const PIN = "agentaudit.verifier";
const $ = (id) => document.getElementById(id);

// h builds an element; strings and numbers become text nodes.
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let uid = 0;
// field returns a labelled input: every control has a label.
function field(label, attrs) {
  const id = attrs.id || `f${++uid}`;
  return h("div", {}, h("label", { for: id }, label), h("input", { type: "text", ...attrs, id }));
}

function apiKey() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "";
}

class APIError extends Error {
  constructor(status, problem) {
    super(problem?.detail ? `${problem.title}: ${problem.detail}` : `${status} ${problem?.title || ""}`);
    this.status = status;
  }
}

async function api(path, opts = {}) {
  const res = await fetch(path, { ...opts, headers: { Authorization: `Bearer ${apiKey()}`, ...(opts.headers || {}) } });
  if (!res.ok) {
    let p = null;
    try {
      p = await res.json();
    } catch {}
    if (res.status === 401) signOut("The API key was refused (401 Unauthorized).");
    throw new APIError(res.status, p);
  }
  return res;
}
const getJSON = async (path, opts) => (await api(path, opts)).json();

function signOut(message) {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
  stopLive();
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("page").hidden = true;
  $("who").textContent = "";
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("apikey").focus();
}

async function signIn(key, remember) {
  sessionStorage.setItem(KEY, key);
  try {
    await getJSON("/v1/sessions?limit=1");
  } catch (e) {
    sessionStorage.removeItem(KEY);
    if (e.status === 403) throw new Error("This key's role may not read the log (writer keys only write).");
    if (e.status === 401) throw new Error("The API key was refused (401 Unauthorized).");
    throw e;
  }
  if (remember) localStorage.setItem(KEY, key);
  return true;
}

function showApp() {
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("signout").hidden = false;
  $("page").hidden = false;
  $("who").textContent = "signed in";
  route();
}

// ---- routing

const routes = [
  [/^#\/sessions$/, sessionsPage],
  [/^#\/session\/(.+)$/, (id) => sessionPage(decodeURIComponent(id))],
  [/^#\/tools$/, toolsPage],
  [/^#\/access$/, accessPage],
  [/^#\/integrity$/, integrityPage],
  [/^#\/live$/, livePage],
  [/^#\/alerts$/, alertsPage],
];

let routeGen = 0; // a page that finishes loading after the user moved on is dropped

async function route() {
  if (!apiKey()) return;
  stopLive();
  const gen = ++routeGen;
  const hash = location.hash || "#/sessions";
  for (const a of document.querySelectorAll("nav a")) {
    const cur = hash === a.getAttribute("href") || (a.getAttribute("href") === "#/sessions" && hash.startsWith("#/session/"));
    if (cur) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const page = $("page");
  page.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  for (const [re, fn] of routes) {
    const m = re.exec(hash);
    if (m) {
      try {
        const content = await fn(...m.slice(1));
        if (gen !== routeGen) return;
        page.replaceChildren(...[content].flat());
        const tr = page.querySelector("ul[role=tree][data-t0]");
        if (tr) {
          void page.offsetHeight; // force layout: the measure includes it
          const ms = Math.round(performance.now() - Number(tr.dataset.t0));
          tr.dataset.renderMs = String(ms);
          $("render-ms").textContent = `rendered in ${ms} ms`;
        }
      } catch (e) {
        if (gen !== routeGen) return;
        page.replaceChildren(h("p", { class: "error", role: "alert" }, e.message));
      }
      document.title = `${page.querySelector("h1")?.textContent || "agentaudit"} · agentaudit console`;
      return;
    }
  }
  location.hash = "#/sessions";
}

// ---- formatting

const fmtTime = (t) => (t ? new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, "Z") : "");
function fmtMS(ms) {
  if (ms === undefined || ms === null) return "";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms * 10) / 10} ms`;
}
const list = (a) => (a && a.length ? a.join(", ") : "—");
function toRFC3339(local) {
  return local ? new Date(local).toISOString() : "";
}

// ---- Sessions

async function sessionsPage() {
  const form = h(
    "form",
    { class: "filters", "aria-label": "Filter sessions" },
    field("User", { name: "user_id" }),
    field("Agent", { name: "agent_id" }),
    field("Tool", { name: "tool_name" }),
    field("Subject (TYPE:ID)", { name: "subject" }),
    field("From", { name: "since", type: "datetime-local" }),
    field("To", { name: "until", type: "datetime-local" }),
    h("div", {}, h("label", { class: "check" }, h("input", { type: "checkbox", name: "failures" }), " Has failures")),
    h("button", { type: "submit" }, "Filter")
  );
  const tbody = h("tbody");
  const status = h("p", { class: "muted", role: "status" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Next page");
  let next = "";
  const load = async (reset) => {
    const fd = new FormData(form);
    const q = new URLSearchParams({ limit: "50" });
    for (const k of ["user_id", "agent_id", "tool_name", "subject"]) if (fd.get(k)) q.set(k, fd.get(k).trim());
    for (const k of ["since", "until"]) if (fd.get(k)) q.set(k, toRFC3339(fd.get(k)));
    if (fd.get("failures")) q.set("failures", "true");
    if (!reset && next) q.set("cursor", next);
    const t0 = performance.now();
    const page = await getJSON(`/v1/sessions?${q}`);
    if (reset) tbody.replaceChildren();
    for (const s of page.sessions) {
      tbody.append(
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: `#/session/${encodeURIComponent(s.session_id)}` }, s.session_id)),
          h("td", {}, list(s.user_ids)),
          h("td", {}, list(s.agent_ids)),
          h("td", {}, list(s.models)),
          h("td", {}, fmtTime(s.start)),
          h("td", { class: "num" }, fmtMS(s.duration_ms)),
          h("td", { class: "num" }, s.events),
          h("td", { class: "num" }, s.failures ? h("span", { class: "badge fail" }, s.failures) : "0"),
          h("td", { class: "num" }, `${s.input_tokens} / ${s.output_tokens}`)
        )
      );
    }
    next = page.next || "";
    more.hidden = !next;
    status.textContent = `${tbody.children.length} sessions shown${next ? ", more on the next page" : ""} (${Math.round(performance.now() - t0)} ms)`;
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load(true).catch((err) => (status.textContent = err.message));
  });
  more.addEventListener("click", () => load(false).catch((err) => (status.textContent = err.message)));
  await load(true);
  return [
    h("h1", {}, "Sessions"),
    form,
    h(
      "table",
      { "aria-label": "Sessions, newest first" },
      h("thead", {}, h("tr", {}, ...["Session", "User", "Agent", "Model", "Start (UTC)", "Duration", "Events", "Failures", "Tokens in / out"].map((c, i) => h("th", { scope: "col", class: i >= 5 && i !== 4 ? "num" : null }, c)))),
      tbody
    ),
    status,
    more,
  ];
}

// ---- Session

function label(ev) {
  switch (ev.kind) {
    case "llm_call":
      return `${ev.model || "model"}${ev.stop_reason ? ` · ${ev.stop_reason}` : ""}`;
    case "tool_call":
    case "tool_result":
      return ev.tool_name || "";
    case "reasoning":
    case "final_output":
      return ev.output_text || ev.rationale || "";
    case "error":
      return ev.error || "";
    case "approval_request":
    case "approval_decision":
      return `${ev.tool_name || ""} ${ev.approval_status || ev.decision || ""}`.trim();
    case "human_intervention":
      return ev.decision || ev.rationale || "";
    case "access":
      return `${ev.subject_type || ""}:${ev.subject_id || ""} ${ev.purpose || ""}`;
    default:
      return ev.output_text || "";
  }
}

function failed(ev) {
  return ev.outcome === "error" || ev.outcome === "denied" || ev.success === false || ev.kind === "error";
}

function containsMask(v) {
  if (v === "[masked]") return true;
  if (v && typeof v === "object") return v.masked === true || Object.values(v).some(containsMask);
  return false;
}

// buildTree arranges records by parent_id, as query.Tree does.
function buildTree(recs) {
  const byID = new Map();
  const nodes = recs.map((r) => ({ rec: r, children: [] }));
  for (const n of nodes) if (n.rec.event) byID.set(n.rec.event.id, n);
  const roots = [];
  for (const n of nodes) {
    const p = n.rec.event && byID.get(n.rec.event.parent_id);
    if (p && p !== n && p.rec.seq < n.rec.seq) p.children.push(n);
    else roots.push(n);
  }
  return roots;
}

async function sessionPage(id) {
  const t0 = performance.now();
  const data = await getJSON(`/v1/sessions/${encodeURIComponent(id)}`);
  const recs = data.records;
  const evs = recs.filter((r) => r.event).map((r) => r.event);
  const start = Math.min(...evs.map((e) => Date.parse(e.time)));
  const end = Math.max(...evs.map((e) => Date.parse(e.time) + (e.duration_ms || e.latency_ms || 0)));
  const span = Math.max(end - start, 1);
  const first = evs[0] || {};
  const tokensIn = evs.reduce((n, e) => n + (e.input_tokens || 0), 0);
  const tokensOut = evs.reduce((n, e) => n + (e.output_tokens || 0), 0);
  const attrib = h(
    "p",
    { class: "attrib" },
    h("strong", {}, "Attribution: "),
    `user ${first.user_id || "—"}${first.user_role ? ` (${first.user_role})` : ""} → agent ${first.agent_name || first.agent_id || "—"}${first.agent_version ? ` v${first.agent_version}` : ""} → model ${[...new Set(evs.map((e) => e.model).filter(Boolean))].join(", ") || "—"} → tools ${[...new Set(evs.map((e) => e.tool_name).filter(Boolean))].join(", ") || "—"}`
  );
  const tree = h("ul", { role: "tree", "aria-label": `Timeline of session ${id}` });
  const items = [];
  const render = (node, level, parent) => {
    const r = node.rec;
    const ev = r.event;
    const li = h("li", { role: "treeitem", "aria-level": level, tabindex: -1, "data-seq": r.seq });
    items.push(li);
    if (!ev) {
      li.append(h("div", { class: "row" }, h("span", {}, h("span", { class: "twisty" }), h("span", { class: "badge" }, "purged"), `seq ${r.seq}, erased by purge ${r.purged_by}`)));
      parent.append(li);
      return;
    }
    const dur = ev.duration_ms || ev.latency_ms || 0;
    const bar = h("span");
    bar.style.left = `${((Date.parse(ev.time) - start) / span) * 100}%`;
    bar.style.width = `${(dur / span) * 100}%`;
    const marks = [];
    if (failed(ev)) marks.push(h("span", { class: "badge fail" }, ev.outcome === "denied" ? "denied" : "failed"));
    if (containsMask(ev)) marks.push(h("span", { class: "badge masked", title: "hidden from your role" }, "masked"));
    for (const x of ev.redactions || []) marks.push(h("span", { class: "badge redacted", title: `${x.kind} ${x.action} at ${x.path}` }, `redacted ${x.kind} at ${x.path}`));
    const tokens = ev.input_tokens || ev.output_tokens ? ` · ${ev.input_tokens || 0}→${ev.output_tokens || 0} tokens` : "";
    const text = label(ev);
    const row = h(
      "div",
      { class: "row" },
      h(
        "span",
        {},
        h("span", { class: "twisty", "aria-hidden": "true" }, node.children.length ? "▾" : ""),
        h("span", { class: `badge ${ev.kind}` }, ev.kind),
        h("span", { class: "label" }, text.length > 160 ? text.slice(0, 160) + "…" : text),
        h("span", { class: "muted" }, ` · ${fmtMS(dur)}${tokens}`),
        " ",
        ...marks
      ),
      h("span", { class: "wf", role: "img", "aria-label": `starts at ${fmtMS(Date.parse(ev.time) - start)}, lasts ${fmtMS(dur)}` }, bar)
    );
    li.append(row);
    const details = h("div", { class: "details" });
    const jsonBtn = h("button", { type: "button", class: "secondary", "aria-expanded": "false", "data-action": "json", "aria-label": `JSON of event seq ${r.seq}` }, "JSON");
    const verifyBtn = h("button", { type: "button", class: "secondary", "data-action": "verify", "aria-label": `Verify event seq ${r.seq} in the browser` }, "Verify in browser");
    const result = h("span", { class: "verify-result", role: "status" });
    const pre = h("pre", { hidden: true });
    jsonBtn.addEventListener("click", () => {
      pre.textContent = JSON.stringify(ev, null, 2);
      pre.hidden = !pre.hidden;
      jsonBtn.setAttribute("aria-expanded", String(!pre.hidden));
    });
    verifyBtn.addEventListener("click", () => verifyEvent(ev.id, result));
    details.append(
      h("span", { class: "muted" }, `seq ${r.seq} · ${fmtTime(ev.time)} · ${ev.id} `),
      ev.user_id ? h("span", { class: "muted" }, `· user ${ev.user_id} `) : null,
      ev.agent_id ? h("span", { class: "muted" }, `· agent ${ev.agent_id} `) : null,
      jsonBtn,
      " ",
      verifyBtn,
      result,
      pre
    );
    li.append(details);
    parent.append(li);
    if (node.children.length) {
      li.setAttribute("aria-expanded", "true");
      const group = h("ul", { role: "group" });
      li.append(group);
      for (const c of node.children) render(c, level + 1, group);
    }
  };
  for (const n of buildTree(recs)) render(n, 1, tree);
  keyboardTree(tree, items);
  const took = performance.now() - t0;
  tree.dataset.t0 = String(t0); // route() completes the measure once the tree is laid out
  return [
    h("h1", {}, `Session ${id}`),
    h("p", {}, `${recs.length} events · ${fmtTime(first.time)} · ${fmtMS(end - start)} · tokens ${tokensIn} in / ${tokensOut} out · `, h("span", { id: "render-ms" }, `rendered in ${Math.round(took)} ms`)),
    attrib,
    h("p", { class: "muted" }, "Arrow keys move through the tree; Left and Right fold and unfold; Enter shows the event's JSON."),
    tree,
  ];
}

// keyboardTree makes a role=tree keyboard-navigable (WAI-ARIA tree pattern, roving tabindex).
function keyboardTree(tree, items) {
  if (items.length) items[0].tabIndex = 0;
  const visible = () => items.filter((li) => !li.parentElement.closest("li[aria-expanded=false]"));
  const focus = (li) => {
    for (const x of items) x.tabIndex = -1;
    li.tabIndex = 0;
    li.focus();
  };
  tree.addEventListener("keydown", (e) => {
    const li = e.target.closest("li[role=treeitem]");
    if (!li || e.target !== li) return;
    const vis = visible();
    const i = vis.indexOf(li);
    switch (e.key) {
      case "ArrowDown":
        if (i + 1 < vis.length) focus(vis[i + 1]);
        break;
      case "ArrowUp":
        if (i > 0) focus(vis[i - 1]);
        break;
      case "Home":
        focus(vis[0]);
        break;
      case "End":
        focus(vis[vis.length - 1]);
        break;
      case "ArrowRight":
        if (li.getAttribute("aria-expanded") === "false") li.setAttribute("aria-expanded", "true");
        else if (li.getAttribute("aria-expanded") === "true") focus(li.querySelector("li[role=treeitem]"));
        break;
      case "ArrowLeft":
        if (li.getAttribute("aria-expanded") === "true") li.setAttribute("aria-expanded", "false");
        else {
          const p = li.parentElement.closest("li[role=treeitem]");
          if (p) focus(p);
        }
        break;
      case "Enter":
        li.querySelector(":scope > .details button[data-action=json]")?.click();
        break;
      default:
        return;
    }
    e.preventDefault();
  });
  tree.addEventListener("click", (e) => {
    const li = e.target.closest("li[role=treeitem]");
    if (li && !e.target.closest("button")) focus(li);
  });
}

// ---- Verify in the browser

function pinnedKey() {
  return localStorage.getItem(PIN) || "";
}

async function verifyEvent(id, out) {
  out.className = "verify-result";
  const key = pinnedKey();
  if (!key) {
    out.className = "verify-result error";
    out.textContent = "Pin the verifier key first (Integrity page): the check trusts only that key, never the server.";
    return;
  }
  out.textContent = "checking…";
  try {
    const bundle = JSON.parse(await (await api(`/v1/proofs/inclusion?id=${encodeURIComponent(id)}`)).text());
    const r = await verifyBundle(bundle, key);
    out.className = "verify-result ok";
    out.textContent = `✔ ${r.purged ? "purged event's leaf " : ""}${r.message} (seq ${r.seq}, leaf ${r.leaf.slice(0, 16)}…)`;
  } catch (e) {
    out.className = "verify-result error";
    out.textContent = e instanceof VerifyError ? `✘ NOT verified: ${e.message}` : `✘ could not check: ${e.message}`;
  }
}

function pinForm(onChange) {
  const ta = h("textarea", { id: "verifier-key", rows: 2, cols: 80, spellcheck: "false" });
  ta.value = pinnedKey();
  const msg = h("span", { role: "status" });
  const save = h("button", { type: "button", id: "pin" }, "Pin this key");
  save.addEventListener("click", async () => {
    const { parseVerifierKey } = await import("./verify.js");
    try {
      const k = await parseVerifierKey(ta.value);
      localStorage.setItem(PIN, k.text);
      msg.className = "ok";
      msg.textContent = `Pinned ${k.name}+${k.hash}.`;
      onChange?.();
    } catch (e) {
      msg.className = "error";
      msg.textContent = e.message;
    }
  });
  return h(
    "div",
    {},
    h("label", { for: "verifier-key" }, "Verifier key"),
    h("p", { class: "muted" }, "Paste the key from the data directory's verifier.key (agentaudit init prints it), obtained outside this server. In-browser checks trust only this key."),
    ta,
    h("div", {}, save, " ", msg)
  );
}

// ---- Tools

async function toolsPage() {
  const { tools } = await getJSON("/v1/stats/tools");
  const max = Math.max(1, ...tools.map((t) => t.calls));
  const rowH = 22;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Calls per tool");
  svg.setAttribute("width", "640");
  svg.setAttribute("height", String(tools.length * rowH + 10));
  tools.forEach((t, i) => {
    const text = document.createElementNS(svgNS, "text");
    text.setAttribute("x", "0");
    text.setAttribute("y", String(i * rowH + 15));
    text.textContent = t.tool;
    const rect = document.createElementNS(svgNS, "rect");
    rect.setAttribute("x", "180");
    rect.setAttribute("y", String(i * rowH + 3));
    rect.setAttribute("height", "16");
    rect.setAttribute("width", String(Math.max(2, (t.calls / max) * 400)));
    const n = document.createElementNS(svgNS, "text");
    n.setAttribute("x", String(186 + (t.calls / max) * 400));
    n.setAttribute("y", String(i * rowH + 15));
    n.textContent = `${t.calls} calls, p95 ${fmtMS(t.p95_ms)}`;
    svg.append(text, rect, n);
  });
  const cols = ["Tool", "Calls", "Success rate", "Failures", "p50", "p95", "p99", "Max", "Users"];
  return [
    h("h1", {}, "Tools"),
    tools.length ? svg : h("p", {}, "No tool calls recorded."),
    h(
      "table",
      { "aria-label": "Per-tool statistics" },
      h("thead", {}, h("tr", {}, ...cols.map((c, i) => h("th", { scope: "col", class: i ? "num" : null }, c)))),
      h(
        "tbody",
        {},
        ...tools.map((t) =>
          h(
            "tr",
            {},
            h("td", {}, t.tool),
            h("td", { class: "num" }, t.calls),
            h("td", { class: "num" }, `${(t.success_rate * 100).toFixed(1)}%`),
            h("td", { class: "num" }, t.failures),
            h("td", { class: "num" }, fmtMS(t.p50_ms)),
            h("td", { class: "num" }, fmtMS(t.p95_ms)),
            h("td", { class: "num" }, fmtMS(t.p99_ms)),
            h("td", { class: "num" }, fmtMS(t.max_ms)),
            h("td", { class: "num" }, t.unique_users)
          )
        )
      )
    ),
  ];
}

// ---- Access report

function download(name, type, data) {
  const a = h("a", { href: URL.createObjectURL(new Blob([data], { type })), download: name });
  document.body.append(a);
  a.click();
  setTimeout(() => {
    URL.revokeObjectURL(a.href);
    a.remove();
  }, 1000);
}

async function accessPage() {
  const out = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "filters", "aria-label": "Access report" },
    field("Subject (TYPE:ID)", { name: "subject", id: "subject", required: true, placeholder: "patient:P-123" }),
    field("From", { name: "from", type: "datetime-local" }),
    field("To", { name: "to", type: "datetime-local" }),
    h("button", { type: "submit", id: "show-report" }, "Show report")
  );
  const query = () => {
    const fd = new FormData(form);
    const q = new URLSearchParams({ subject: fd.get("subject").trim() });
    if (fd.get("from")) q.set("from", toRFC3339(fd.get("from")));
    if (fd.get("to")) q.set("to", toRFC3339(fd.get("to")));
    return q;
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const q = query();
      const rep = await getJSON(`/v1/reports/access?${q}`);
      const csv = h("button", { type: "button", class: "secondary" }, "Download CSV");
      csv.addEventListener("click", async () => {
        q.set("format", "csv");
        download(`access-${rep.subject_id}.csv`, "text/csv", await (await api(`/v1/reports/access?${q}`)).text());
      });
      const print = h("button", { type: "button", class: "secondary" }, "Print");
      print.addEventListener("click", () => window.print());
      const cols = ["Time (UTC)", "User", "Role", "Agent", "Tool", "Kind", "Purpose", "Outcome", "Break-glass", "Verified"];
      out.replaceChildren(
        h("h2", {}, `Accesses to ${rep.subject_type ? rep.subject_type + ":" : ""}${rep.subject_id}`),
        h("p", {}, `${fmtTime(rep.from)} to ${fmtTime(rep.to)} · ${rep.total} accesses by ${rep.unique_users} users · ${rep.break_glass} break-glass · ${rep.failed} failed · `, h("span", { class: rep.integrity_verified ? "ok" : "error" }, rep.integrity_verified ? "integrity verified by the server" : `integrity NOT verified: ${rep.integrity_note || ""}`)),
        h("p", {}, csv, " ", print),
        h(
          "table",
          { "aria-label": "Accesses" },
          h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col" }, c)))),
          h(
            "tbody",
            {},
            ...rep.accesses.map((a) =>
              h("tr", {}, h("td", {}, fmtTime(a.time)), h("td", {}, a.user_id), h("td", {}, a.user_role || ""), h("td", {}, a.agent_id || ""), h("td", {}, a.tool || ""), h("td", {}, a.kind), h("td", {}, a.purpose || ""), h("td", {}, a.outcome || (a.success === false ? "failed" : "")), h("td", {}, a.break_glass ? `yes: ${a.break_glass_reason || ""}` : ""), h("td", {}, a.verified ? "yes" : "no"))
            )
          )
        )
      );
    } catch (err) {
      out.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
    }
  });
  return [h("h1", {}, "Access report"), form, out];
}

// ---- Integrity

async function integrityPage() {
  const note = await (await api("/v1/checkpoint")).text();
  const size = note.split("\n")[1];
  const dl = h("button", { type: "button", class: "secondary" }, "Download checkpoint");
  dl.addEventListener("click", () => download(`checkpoint-${size}.txt`, "text/plain", note));
  const last = sessionStorage.getItem("agentaudit.lastverify");
  const result = h("div", { role: "status" }, last ? `Last verification from this tab: ${last}` : "No verification run from this tab yet.");
  const run = h("button", { type: "button", id: "run-verify" }, "Run full verification");
  run.addEventListener("click", async () => {
    run.disabled = true;
    result.textContent = "verifying the whole log…";
    try {
      const rep = await getJSON("/v1/verify", { method: "POST" });
      const ok = !rep.problems || rep.problems.length === 0;
      const line = `${new Date().toISOString()}: ${ok ? "OK" : `${rep.problems.length} problems`}`;
      sessionStorage.setItem("agentaudit.lastverify", line);
      result.replaceChildren(h("p", { class: ok ? "ok" : "error" }, line), h("pre", { class: "note" }, JSON.stringify(rep, null, 2)));
    } catch (e) {
      result.replaceChildren(h("p", { class: "error" }, e.status === 403 ? "Only auditors and admins may run a verification." : e.message));
    } finally {
      run.disabled = false;
    }
  });
  return [
    h("h1", {}, "Integrity"),
    h("p", {}, h("strong", {}, "Tree size: "), size),
    h("h2", {}, "Newest checkpoint"),
    h("pre", { class: "note", "aria-label": "Newest signed checkpoint" }, note),
    h("p", {}, dl, " Keep copies outside this system: a later checkpoint must extend them (consistency proofs)."),
    h("h2", {}, "Verifier key"),
    pinForm(),
    h("h2", {}, "Verification"),
    h("p", {}, run),
    result,
  ];
}

// ---- Live

let live = null;
function stopLive() {
  if (live) live.abort();
  live = null;
}

async function livePage() {
  const listEl = h("ol", { class: "live-list", reversed: true, "aria-label": "Events as they are committed" });
  const status = h("p", { role: "status", class: "muted" }, "connecting…");
  const pause = h("button", { type: "button", "aria-pressed": "false" }, "Pause");
  let paused = false;
  const held = [];
  const show = (rec) => {
    const ev = rec.event;
    const line = ev ? `#${rec.seq} ${fmtTime(ev.time)} ${ev.kind} ${ev.session_id || ""} ${ev.user_id || ""} ${ev.tool_name || ev.model || ""}` : `#${rec.seq} (purged)`;
    const li = h("li", {}, ev?.session_id ? h("a", { href: `#/session/${encodeURIComponent(ev.session_id)}` }, line) : line);
    listEl.prepend(li);
    while (listEl.children.length > 500) listEl.lastChild.remove();
  };
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) held.splice(0).forEach(show);
    status.textContent = paused ? "paused: new events are held" : "live";
  });
  const ctl = new AbortController();
  live = ctl;
  (async () => {
    let from = "";
    while (!ctl.signal.aborted) {
      try {
        // fetch, not EventSource: EventSource cannot send the Authorization header.
        const res = await api(`/v1/stream${from ? `?from=${from}` : ""}`, { signal: ctl.signal });
        status.textContent = paused ? "paused: new events are held" : "live";
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const msg = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = msg.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
            if (!data) continue;
            const rec = JSON.parse(data);
            from = String(rec.seq + 1);
            if (paused) held.push(rec);
            else show(rec);
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
        status.textContent = `disconnected (${e.message}); retrying`;
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  })();
  return [h("h1", {}, "Live"), h("p", {}, pause), status, listEl];
}

// ---- Alerts and reviews

function deliveries(ds) {
  if (!ds || !ds.length) return "no webhook";
  const last = new Map(); // the newest attempt per webhook
  for (const d of ds) last.set(d.webhook, d);
  return [...last.values()].map((d) => `${d.webhook}: ${d.delivered ? "delivered" : `not delivered${d.status ? ` (HTTP ${d.status})` : ""}${d.error ? `: ${d.error}` : ""}`}${d.attempt ? `, attempt ${d.attempt}` : ""}`).join("; ");
}

function triggers(a) {
  const ts = a.triggers && a.triggers.length ? a.triggers : (a.record.trigger_ids || []).map((id) => ({ id }));
  if (!ts.length) return "—";
  return h(
    "ul",
    { class: "plain" },
    ...ts.map((t) => {
      const what = `${t.kind || "event"}${t.seq !== undefined ? ` #${t.seq}` : ""}${t.purged ? " (purged)" : ""}`;
      return h("li", {}, t.session_id ? h("a", { href: `#/session/${encodeURIComponent(t.session_id)}`, title: `event ${t.id}` }, `${what} in session ${t.session_id}`) : `${what} ${t.id}`);
    })
  );
}

async function alertsPage() {
  const { alerts } = await getJSON("/v1/alerts?limit=200");
  alerts.reverse(); // the API lists oldest first
  const cols = ["Time (UTC)", "Rule", "Severity", "Group", "What", "Triggering events", "Delivery"];
  const alertsTable = alerts.length
    ? h(
        "table",
        { "aria-label": "Alerts, newest first", id: "alerts" },
        h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          ...alerts.map((a) => {
            const r = a.record;
            const group = Object.entries(r.group || {}).map(([k, v]) => `${k}=${v}`).join(", ");
            return h(
              "tr",
              { "data-seq": a.seq },
              h("td", {}, fmtTime(a.time)),
              h("td", {}, r.rule),
              h("td", {}, h("span", { class: `badge sev-${r.severity}` }, r.severity)),
              h("td", {}, group || "—"),
              h("td", {}, r.message || ""),
              h("td", {}, triggers(a)),
              h("td", {}, deliveries(a.deliveries))
            );
          })
        )
      )
    : h("p", {}, "No alerts raised.");
  return [h("h1", {}, "Alerts and reviews"), h("h2", {}, "Alerts"), alertsTable, h("h2", { id: "reviews-h" }, "Break-the-glass accesses awaiting review"), await reviewsPart()];
}

async function reviewsPart() {
  const box = h("div", { id: "reviews", "aria-labelledby": "reviews-h" });
  const status = h("p", { role: "status", class: "muted", id: "review-status", tabindex: -1 });
  const load = async () => {
    let reviews;
    try {
      ({ reviews } = await getJSON("/v1/reviews"));
    } catch (e) {
      if (e.status !== 403) throw e;
      box.replaceChildren(h("p", { class: "error", role: "alert" }, "Only auditors and admins may see and close break-the-glass reviews: this key's role may not (403 Forbidden)."));
      return;
    }
    if (!reviews.length) {
      box.replaceChildren(h("p", { id: "no-reviews" }, "No break-the-glass access awaits review."), status);
      return;
    }
    const cols = ["Access (UTC)", "Age", "User", "Subject", "Purpose", "Reason", "Session", "Review"];
    box.replaceChildren(
      h(
        "table",
        { "aria-label": "Break-the-glass accesses awaiting review, oldest first" },
        h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, ...reviews.map(reviewRow))
      ),
      status
    );
  };
  const reviewRow = (rv) => {
    const a = rv.access || {};
    const note = h("input", { type: "text", id: `note-${rv.seq}`, name: "note", required: true, placeholder: "justified: ER admission" });
    const form = h(
      "form",
      { class: "review", "aria-label": `Review of access seq ${rv.seq}` },
      h("label", { for: note.id }, "Note"),
      note,
      " ",
      h("button", { type: "submit", "aria-label": `Close the review of access seq ${rv.seq}` }, "Close review")
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const btn = form.querySelector("button");
      btn.disabled = true;
      try {
        const res = await getJSON(`/v1/reviews/${encodeURIComponent(a.id)}/close`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ note: note.value.trim() }),
        });
        await load();
        status.className = "ok";
        status.textContent = `Review of access seq ${rv.seq} recorded by ${res.reviewer} (event seq ${res.seq}).`;
        status.focus(); // the row and its controls are gone: keep the keyboard on the page
      } catch (err) {
        btn.disabled = false;
        status.className = "error";
        status.textContent = err.status === 403 ? "Only auditors and admins may close a review." : err.message;
      }
    });
    return h(
      "tr",
      { "data-seq": rv.seq },
      h("td", {}, fmtTime(a.time)),
      h("td", {}, rv.age),
      h("td", {}, `${a.user_id || ""}${a.user_role ? ` (${a.user_role})` : ""}`),
      h("td", {}, `${a.subject_type ? a.subject_type + ":" : ""}${a.subject_id || ""}`),
      h("td", {}, a.purpose || ""),
      h("td", {}, a.break_glass_reason || ""),
      h("td", {}, a.session_id ? h("a", { href: `#/session/${encodeURIComponent(a.session_id)}` }, a.session_id) : "—"),
      h("td", {}, form)
    );
  };
  await load();
  return box;
}

// ---- start

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("signin-error").textContent = "";
  try {
    await signIn($("apikey").value.trim(), $("remember").checked);
    $("apikey").value = "";
    showApp();
  } catch (err) {
    $("signin-error").textContent = err.message;
  }
});
$("signout").addEventListener("click", () => signOut(""));
window.addEventListener("hashchange", route);
if (apiKey()) showApp();
