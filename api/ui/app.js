// The dashboard: a client of the job API, nothing more. Everything it shows from the API is set as text (never as
// HTML), its token lives in this tab's sessionStorage and travels only as a Bearer header, and the page's
// Content-Security-Policy lets it run its own files alone (dom.js, charts.js, then this one).
"use strict";

const TOKEN_KEY = "finetuning-token";
const POLL_MS = 3000;
const MAX_LOG_PAGES = 20; // the page shows at most the newest 5,000 lines; GET /v1/jobs/{id}/logs has them all
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const KINDS = ["sft", "dpo", "grpo", "generate", "merge", "adapter-conversion"];
const TRAINING_KINDS = ["sft", "dpo", "grpo"];
const STATUSES = ["queued", "running", "cancel_requested", "succeeded", "failed", "cancelled"];

let cleanup = []; // what the current view started (timers, streams): stopped when the view changes

// -- the API -------------------------------------------------------------------------------------------------------

class Unauthorized extends Error {}

async function api(method, path, { body, yaml, signal } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
  let payload;
  if (yaml !== undefined) { headers["Content-Type"] = "application/yaml"; payload = yaml; }
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  const response = await fetch(path, { method, headers, body: payload, signal });
  if (response.status === 401) throw new Unauthorized("the token was refused");
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status: response.status, ok: response.ok, json, text };
}

function apiError(answer) {
  const error = answer.json && answer.json.error;
  return error ? `${error.code}: ${error.message}` : `HTTP ${answer.status}`;
}

// Server-sent events through fetch (EventSource cannot send an Authorization header), resumed after a dropped
// connection from the last id seen, until the server ends the stream (the job finished) or the view is left.
function followEvents(jobId, after, onEvent, onEnd) {
  const controller = new AbortController();
  let lastId = after;
  let stopped = false;
  function dispatch(block) {
    let id = null, type = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("id:")) id = Number(line.slice(3).trim());
      else if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    if (id) lastId = id;
    if (!data) return;
    try { onEvent(type, JSON.parse(data), id); } catch (error) { console.error(error); }
  }
  async function connect() {
    while (!stopped) {
      try {
        const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
        if (lastId) headers["Last-Event-ID"] = String(lastId);
        const response = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/events/stream`,
          { headers, signal: controller.signal });
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const blocks = (buffer + value).split("\n\n"); // one split per chunk: linear in what arrives
          buffer = blocks.pop();
          for (const block of blocks) dispatch(block);
        }
        stopped = true; // the server ended the stream: every event of a finished job was sent
        onEnd();
      } catch (error) {
        if (stopped || controller.signal.aborted) return;
        await new Promise((resolve) => setTimeout(resolve, 1000)); // dropped: reconnect with Last-Event-ID
      }
    }
  }
  connect();
  return () => { stopped = true; controller.abort(); };
}

// -- views ---------------------------------------------------------------------------------------------------------

function render(...nodes) {
  // a section a page leaves out is passed as false
  document.getElementById("app").replaceChildren(...nodes.filter((node) => node !== false && node !== null));
}

function signIn(message) {
  const input = el("input", { type: "password", testid: "token-input", placeholder: "ft_...", autocomplete: "off",
    "aria-label": "API token" });
  const error = el("div", { class: "error" }, message || "");
  const form = el("form", { class: "signin", onsubmit: async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      const answer = await api("GET", "/v1/jobs?limit=1");
      if (!answer.ok) throw new Error(apiError(answer));
      route();
    } catch (failure) {
      sessionStorage.removeItem(TOKEN_KEY);
      error.textContent = failure instanceof Unauthorized ? "That token was not accepted." : String(failure.message);
    }
  } },
  el("h1", {}, "Sign in"),
  el("p", { class: "muted" }, "Paste an API token (finetuning-admin token create). It stays in this tab only."),
  input, el("button", { class: "primary", type: "submit", testid: "sign-in" }, "Sign in"), error);
  render(form);
  input.focus();
}

function statusBadge(status, testid) {
  return el("span", { class: `status ${status}`, testid }, status);
}

async function jobList() {
  const params = new URLSearchParams(location.search);
  const kind = el("select", { "aria-label": "kind", testid: "filter-kind" }, el("option", { value: "" }, "any kind"),
    ...KINDS.map((k) => el("option", { value: k, selected: params.get("kind") === k }, k)));
  const status = el("select", { "aria-label": "status", testid: "filter-status" },
    el("option", { value: "" }, "any status"),
    ...STATUSES.map((s) => el("option", { value: s, selected: params.get("status") === s }, s)));
  const label = el("input", { placeholder: "label key=value", value: params.get("label") || "", testid: "filter-label" });
  const body = el("tbody");
  const note = el("div", { class: "muted" });
  const compare = el("button", { class: "primary", type: "button", disabled: true, onclick: () => {
    const ids = [...body.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value);
    navigate(`/ui/compare?ids=${ids.map(encodeURIComponent).join(",")}`);
  } }, "Compare selected");
  const apply = () => {
    const next = new URLSearchParams();
    if (kind.value) next.set("kind", kind.value);
    if (status.value) next.set("status", status.value);
    if (label.value.trim()) next.set("label", label.value.trim());
    navigate(`/ui/${next.toString() ? `?${next}` : ""}`, true);
  };
  kind.addEventListener("change", apply);
  status.addEventListener("change", apply);
  label.addEventListener("change", apply);
  render(el("h1", {}, "Jobs"), el("div", { class: "filters" }, kind, status, label, compare),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "name"), el("th", {}, "kind"),
      el("th", {}, "status"), el("th", {}, "phase"), el("th", {}, "progress"), el("th", {}, "labels"),
      el("th", {}, "created"))), body), note);
  const selected = new Set();
  async function refresh() {
    const query = new URLSearchParams({ limit: "100" });
    for (const key of ["kind", "status", "label"]) if (params.get(key)) query.set(key, params.get(key));
    const answer = await api("GET", `/v1/jobs?${query}`);
    if (!answer.ok) { note.textContent = apiError(answer); return; }
    body.replaceChildren(...answer.json.data.map((job) => {
      const box = el("input", { type: "checkbox", value: job.id, checked: selected.has(job.id), "aria-label": "compare",
        onchange: (event) => {
          if (event.target.checked) selected.add(job.id); else selected.delete(job.id);
          if (selected.size > COLORS) { event.target.checked = false; selected.delete(job.id); }
          compare.disabled = selected.size < 1;
        } });
      const progress = job.progress && job.progress.percent !== null && job.progress.percent !== undefined
        ? `${fmtNumber(job.progress.percent)}%` : "-";
      const labels = Object.entries(job.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
      return el("tr", { testid: "job-row", "data-job-id": job.id },
        el("td", {}, box), el("td", {}, link(`/ui/jobs/${encodeURIComponent(job.id)}`, job.name || job.id)),
        el("td", {}, job.kind), el("td", {}, statusBadge(job.status, "status")), el("td", {}, job.phase || "-"),
        el("td", {}, progress), el("td", {}, labels), el("td", {}, fmtTime(job.created_at)));
    }));
    note.textContent = answer.json.data.length ? "" : "No jobs yet.";
  }
  await refresh();
  const timer = setInterval(() => refresh().catch(handleFailure), POLL_MS);
  cleanup.push(() => clearInterval(timer));
}

async function jobPage(jobId) {
  const path = `/v1/jobs/${encodeURIComponent(jobId)}`;
  const first = await api("GET", path);
  if (!first.ok) { render(el("h1", {}, "Job"), el("p", { class: "error" }, apiError(first))); return; }
  const title = el("h1", {});
  const summary = el("div", { class: "summary" });
  const message = el("div", { class: "error" });
  const cancel = el("button", { class: "danger", type: "button", testid: "cancel", onclick: async () => {
    cancel.disabled = true;
    const answer = await api("POST", `${path}/cancel?checkpoint=true`);
    message.textContent = answer.ok ? "" : apiError(answer);
    show((answer.ok && answer.json) || job);
  } }, "Cancel");
  const resume = el("button", { class: "primary", type: "button", testid: "resume", onclick: async () => {
    resume.disabled = true;
    const answer = await api("POST", `${path}/resume`);
    message.textContent = answer.ok ? "" : apiError(answer);
    if (answer.ok) { show(answer.json); startStream(); }
  } }, "Resume");
  const lossChart = new Chart("loss-chart", "train loss");
  const evalChart = new Chart("eval-chart", "eval loss");
  // GRPO: the reward is the curve to watch, and the sampled answers what it means
  const grpo = first.json.kind === "grpo";
  const rewardChart = new Chart("reward-chart", "reward");
  const samples = el("div", { class: "samples", testid: "samples" }, "no samples yet");
  const logs = el("pre", { class: "logs", testid: "logs" });
  const config = el("pre", { testid: "config" });
  const artifacts = el("tbody");
  const checkpoints = el("tbody");
  render(title, summary, el("div", { class: "actions" }, cancel, resume), message,
    el("div", { class: "charts" }, lossChart.node, evalChart.node, grpo && rewardChart.node),
    grpo && el("h2", {}, "Samples"), grpo && samples,
    el("h2", {}, "Checkpoints"), el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "step"),
      el("th", {}, "complete"), el("th", {}, "train loss"), el("th", {}, "eval loss"), el("th", {}, "size"),
      el("th", {}, "saved"), el("th", {}, "use as"))), checkpoints),
    el("h2", {}, "Artifacts"), el("table", {}, artifacts),
    el("h2", {}, "Logs"), logs, el("h2", {}, "Resolved config"), config);

  let job = first.json;
  const train = new Series();
  const evals = new Series();
  const rewards = new Series();
  let pendingLines = [];
  function flushLines() { // once a frame, however many lines arrived: the page keeps the newest 5,000
    const follow = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
    logs.append(...pendingLines.splice(0).map((line) => document.createTextNode(line)));
    while (logs.childNodes.length > 5000) logs.removeChild(logs.firstChild);
    if (follow) logs.scrollTop = logs.scrollHeight;
  }
  function show(current) {
    job = current;
    title.replaceChildren(job.name || job.id, " ", statusBadge(job.status, "status"));
    const progress = job.progress || {};
    const percent = progress.percent !== null && progress.percent !== undefined ? `${fmtNumber(progress.percent)}%` : "-";
    summary.replaceChildren(
      el("div", {}, el("span", {}, "kind"), job.kind),
      el("div", {}, el("span", {}, "phase"), job.phase || "-"),
      el("div", { testid: "progress" }, el("span", {}, "progress"),
        `${percent}${progress.step ? ` (step ${progress.step}/${progress.total_steps ?? "?"})` : ""}`),
      el("div", {}, el("span", {}, "ETA"), fmtSeconds(progress.eta_s)),
      el("div", {}, el("span", {}, "attempt"), String(job.attempt ?? "-")),
      el("div", {}, el("span", {}, "created"), fmtTime(job.created_at)),
      ...(job.error ? [el("div", { class: "error" }, el("span", {}, "error"), `${job.error.code}: ${job.error.message}`)]
        : []));
    cancel.disabled = TERMINAL.has(job.status) || job.status === "cancel_requested";
    resume.disabled = !["failed", "cancelled"].includes(job.status) || !TRAINING_KINDS.includes(job.kind);
    config.textContent = JSON.stringify((job.resolved && job.resolved.config) || job.config, null, 2);
    artifacts.replaceChildren(...Object.entries(job.artifacts || {}).map(([name, value]) =>
      el("tr", {}, el("td", {}, name), el("td", {}, String(value)))));
  }
  show(job);

  async function loadCheckpoints() {
    if (!TRAINING_KINDS.includes(job.kind)) return;
    const answer = await api("GET", `${path}/checkpoints?limit=200`);
    if (!answer.ok) return;
    checkpoints.replaceChildren(...answer.json.data.map((c) => el("tr", { testid: "checkpoint-row" },
      el("td", {}, String(c.step)), el("td", {}, c.complete ? "yes" : "no"),
      el("td", {}, fmtNumber(((c.metrics || {}).train || {}).loss ?? "-")),
      el("td", {}, fmtNumber(((c.metrics || {}).eval || {}).loss ?? "-")),
      el("td", {}, fmtBytes(c.size_bytes)), el("td", {}, fmtTime(c.created_at)),
      el("td", {}, c.complete ? `job:${job.id}/${c.name}` : "-"))));
  }

  function onEvent(type, event) {
    const data = event || {}; // the SSE data is the event's own data
    if (type === "metrics" && typeof data.step === "number") {
      if (data.loss !== null && data.loss !== undefined) { train.add(data.step, data.loss); drawCharts(); }
      const reward = (data.extra || {}).reward;
      if (grpo && typeof reward === "number") { rewards.add(data.step, reward); drawCharts(); }
    } else if (type === "samples" && Array.isArray(data.samples)) {
      showSamples(data);
    } else if (type === "eval" && typeof data.step === "number") {
      const loss = (data.metrics || {}).loss;
      if (loss !== undefined) { evals.add(data.step, loss); drawCharts(); }
    } else if (type === "log") {
      const line = data.line !== undefined ? data.line : `${data.level || "info"}: ${data.message || ""}`;
      pendingLines.push(`${line}\n`);
      if (pendingLines.length === 1) requestAnimationFrame(flushLines);
    } else if (["phase", "progress", "status", "job", "checkpoint", "resumed"].includes(type)) {
      refreshSoon();
      if (type === "checkpoint" || type === "status") loadCheckpoints().catch(() => {});
    }
  }
  function drawCharts() {
    lossChart.set([{ label: "train loss", points: train.points(), color: "#2e5bff" }]);
    evalChart.set([{ label: "eval loss", points: evals.points(), color: "#e4572e" }]);
    if (grpo) rewardChart.set([{ label: "reward", points: rewards.points(), color: "#2a9d5c" }]);
  }
  function showSamples(data) { // the latest logging step's sampled answers, each with its graders' rewards
    samples.replaceChildren(el("div", { class: "samples-step" }, `step ${data.step}`),
      ...data.samples.map((s) => el("div", { class: "sample", testid: "sample" },
        el("div", { class: "sample-rewards" }, `reward ${fmtNumber(s.reward)}`,
          ...Object.entries(s.rewards || {}).map(([name, value]) => ` · ${name} ${fmtNumber(value)}`)),
        el("pre", { class: "sample-prompt" }, String(s.prompt ?? "")),
        el("pre", { class: "sample-completion" }, String(s.completion ?? "")))));
  }
  let refreshTimer = null;
  function refreshSoon() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      const answer = await api("GET", path);
      if (answer.ok) show(answer.json);
    }, 500);
  }
  let stopStream = null;
  let streamFrom = 0;
  function startStream() {
    if (stopStream) stopStream();
    stopStream = followEvents(jobId, streamFrom, onEvent, () => { refreshSoon(); loadCheckpoints().catch(() => {}); });
  }
  cleanup.push(() => { if (stopStream) stopStream(); if (refreshTimer) clearTimeout(refreshTimer); });
  // the history in two reads (the series, the log lines), then the stream from where they end
  const metrics = await api("GET", `${path}/metrics`);
  if (metrics.ok) {
    for (const p of metrics.json.train.loss || []) train.add(p.step, p.value);
    for (const p of metrics.json.eval.loss || []) evals.add(p.step, p.value);
    for (const p of metrics.json.train.reward || []) rewards.add(p.step, p.value);
    streamFrom = metrics.json.through_event_id || 0;
  }
  drawCharts();
  let after = 0;
  for (let page = 0; page < MAX_LOG_PAGES; page += 1) {
    const answer = await api("GET", `${path}/events?type=log&limit=1000&after=${after}`);
    if (!answer.ok) break;
    for (const event of answer.json.data) if (event.id <= streamFrom) onEvent("log", event.data);
    if (!answer.json.next || answer.json.next >= streamFrom) break;
    after = answer.json.next;
  }
  if (grpo) { // the latest sampled answers so far; the stream brings the next ones
    let latest = null;
    let from = 0;
    for (let page = 0; page < MAX_LOG_PAGES; page += 1) {
      const answer = await api("GET", `${path}/events?type=samples&limit=1000&after=${from}`);
      if (!answer.ok) break;
      for (const event of answer.json.data) if (event.id <= streamFrom) latest = event.data;
      if (!answer.json.next || answer.json.next >= streamFrom) break;
      from = answer.json.next;
    }
    if (latest) showSamples(latest);
  }
  startStream();
  await loadCheckpoints();
  const poll = setInterval(() => { if (!TERMINAL.has(job.status)) refreshSoon(); }, POLL_MS * 2);
  cleanup.push(() => clearInterval(poll));
}

async function comparePage() {
  const ids = (new URLSearchParams(location.search).get("ids") || "").split(",").filter(Boolean).slice(0, COLORS);
  const chart = new Chart("compare-chart", "train loss");
  const input = el("input", { placeholder: "job ids, comma-separated (up to 5)", value: ids.join(","),
    testid: "compare-ids", size: 80 });
  const go = el("button", { class: "primary", type: "button",
    onclick: () => navigate(`/ui/compare?ids=${encodeURIComponent(input.value.replace(/\s/g, ""))}`) }, "Compare");
  const note = el("div", { class: "error" });
  render(el("h1", {}, "Compare"), el("div", { class: "filters" }, input, go), chart.node, note);
  const series = [];
  const colors = ["#2e5bff", "#e4572e", "#17a398", "#a259ff", "#f2a900"];
  for (const [index, id] of ids.entries()) {
    const [job, metrics] = await Promise.all([api("GET", `/v1/jobs/${encodeURIComponent(id)}`),
      api("GET", `/v1/jobs/${encodeURIComponent(id)}/metrics`)]);
    if (!job.ok || !metrics.ok) { note.append(`${id}: ${apiError(job.ok ? metrics : job)}. `); continue; }
    const points = (metrics.json.train.loss || []).map((p) => ({ step: p.step, value: Number(p.value) }));
    series.push({ label: job.json.name || id, points, color: colors[index % colors.length] });
  }
  chart.set(series);
}

function submitPage() {
  const kind = el("select", { "aria-label": "kind", testid: "submit-kind" },
    ...KINDS.map((k) => el("option", { value: k }, k)));
  const text = el("textarea", { testid: "config-input", spellcheck: "false",
    placeholder: "Paste a YAML config, or drop a file below" });
  const drop = el("div", { class: "drop", testid: "config-drop" }, "Drop a .yaml file here");
  const errors = el("div", { testid: "submit-errors", class: "error" });
  const annotated = el("div", { class: "annotated", hidden: true });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) text.value = await file.text();
  });
  const submit = el("button", { class: "primary", type: "button", testid: "submit", onclick: async () => {
    submit.disabled = true;
    errors.replaceChildren();
    annotated.hidden = true;
    try {
      const answer = await api("POST", `/v1/jobs/${kind.value}`, { yaml: text.value });
      if (answer.ok) { navigate(`/ui/jobs/${encodeURIComponent(answer.json.id)}`); return; }
      const error = (answer.json && answer.json.error) || { message: `HTTP ${answer.status}` };
      const details = error.details && error.details.length ? error.details : [error];
      errors.replaceChildren(el("div", {}, error.message), el("ul", {}, ...details.map((d) =>
        el("li", { "data-param": d.param || "" }, d.param ? el("code", {}, d.param) : null, d.param ? ": " : "",
          d.message))));
      annotate(annotated, text.value, details);
    } finally {
      submit.disabled = false;
    }
  } }, "Validate and submit");
  render(el("h1", {}, "Submit a job"), el("div", { class: "editor" }, el("div", { class: "filters" }, kind, submit),
    text, drop, errors, annotated));
}

// Each problem next to its field: the config's lines, with the message under the line that holds the field's key.
function annotate(container, yamlText, details) {
  const lines = yamlText.split("\n");
  const notes = new Map();
  for (const detail of details) {
    if (!detail.param) continue;
    const keys = detail.param.split(/[.[\]]+/).filter((part) => part && !/^\d+$/.test(part));
    let from = 0, at = -1;
    for (const key of keys) { // each key of the path, in order, further down the file
      const found = lines.findIndex((line, index) => index >= from &&
        new RegExp(`^\\s*(- )?${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*:`).test(line));
      if (found < 0) break;
      at = found;
      from = found + 1;
    }
    if (at >= 0) notes.set(at, [...(notes.get(at) || []), `${detail.param}: ${detail.message}`]);
  }
  container.replaceChildren(...lines.flatMap((line, index) => {
    const rows = [el("div", { class: notes.has(index) ? "bad" : "" }, line || " ")];
    for (const note of notes.get(index) || []) rows.push(el("div", { class: "note", testid: "field-error" }, note));
    return rows;
  }));
  container.hidden = notes.size === 0;
}

// -- routing -------------------------------------------------------------------------------------------------------

function navigate(url, replace = false) {
  if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
  route();
}

function handleFailure(failure) {
  if (failure instanceof Unauthorized) { sessionStorage.removeItem(TOKEN_KEY); signIn("Your token was refused."); }
  else console.error(failure);
}

async function route() {
  for (const stop of cleanup.splice(0)) stop();
  const signOut = document.getElementById("sign-out");
  if (!sessionStorage.getItem(TOKEN_KEY)) { signOut.hidden = true; signIn(); return; }
  signOut.hidden = false;
  const path = location.pathname;
  try {
    const job = path.match(/^\/ui\/jobs\/([^/]+)$/);
    if (job) await jobPage(decodeURIComponent(job[1]));
    else if (path === "/ui/compare") await comparePage();
    else if (path === "/ui/submit") submitPage();
    else await jobList();
  } catch (failure) {
    handleFailure(failure);
  }
}

document.addEventListener("click", (event) => {
  const anchor = event.target.closest("a[data-link]");
  if (!anchor || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(anchor.getAttribute("href"));
});
window.addEventListener("popstate", route);
document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  route();
});
route();
