// Line charts that stay fast with 100,000 points, and the per-step series they draw.
"use strict";

const COLORS = 5; // the compare view overlays up to this many jobs (.c0 ... .c4)

// -- charts --------------------------------------------------------------------------------------------------------

// A line chart of one or more series ({label, points: [{step, value}], color}) that stays fast with 100,000 points:
// each series is drawn from at most the first, last, lowest and highest point of every pixel column, and a click
// reads the exact value nearest the clicked step from the full series.
class Chart {
  constructor(testid, title) {
    this.series = [];
    this.svg = svg("svg", { viewBox: "0 0 600 220", preserveAspectRatio: "none", role: "img" });
    this.readout = el("div", { class: "readout" }, "Click the chart for exact values.");
    this.legend = el("div", { class: "legend" });
    this.node = el("div", { class: "chart", testid, "data-points": "0" }, el("div", {}, title), this.svg,
      this.legend, this.readout);
    this.svg.addEventListener("click", (event) => this.read(event));
    this.pending = false;
  }

  set(series) { this.series = series; this.schedule(); }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  bounds() {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const s of this.series) {
      for (const p of s.points) {
        if (typeof p.value !== "number" || !Number.isFinite(p.value)) continue;
        if (p.step < x0) x0 = p.step; if (p.step > x1) x1 = p.step;
        if (p.value < y0) y0 = p.value; if (p.value > y1) y1 = p.value;
      }
    }
    if (x0 === Infinity) return null;
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    const pad = (y1 - y0) * 0.05;
    return { x0, x1, y0: y0 - pad, y1: y1 + pad };
  }

  draw() {
    this.svg.replaceChildren();
    this.legend.replaceChildren();
    const b = this.bounds();
    let drawn = 0;
    const width = 600, height = 220, left = 40, bottom = 16;
    if (b) {
      const sx = (step) => left + ((step - b.x0) / (b.x1 - b.x0)) * (width - left - 4);
      const sy = (value) => 4 + (1 - (value - b.y0) / (b.y1 - b.y0)) * (height - bottom - 8);
      for (const [text, y] of [[fmtNumber(b.y1), 10], [fmtNumber(b.y0), height - bottom]]) {
        const label = svg("text", { x: 2, y, "font-size": 10, fill: "#667085" });
        label.textContent = text;
        this.svg.append(label);
      }
      const stepLabel = svg("text", { x: width - 4, y: height - 2, "font-size": 10, fill: "#667085",
        "text-anchor": "end" });
      stepLabel.textContent = `step ${Math.round(b.x1)}`;
      this.svg.append(stepLabel);
      this.series.forEach((s, index) => {
        const kept = downsample(s.points, sx, width);
        drawn += kept.length;
        const coords = kept.map((p) => `${sx(p.step).toFixed(1)},${sy(p.value).toFixed(1)}`).join(" ");
        this.svg.append(svg("polyline", { points: coords, fill: "none", stroke: s.color, "stroke-width": 1.5,
          "vector-effect": "non-scaling-stroke" }));
        const swatch = el("span", { class: `swatch c${index % COLORS}` });
        if (s.color) swatch.style.background = s.color; // the line's own colour (CSSOM: allowed by the CSP)
        this.legend.append(el("span", {}, swatch, s.label));
      });
    }
    this.node.dataset.points = String(drawn);
  }

  read(event) {
    const b = this.bounds();
    if (!b) return;
    const box = this.svg.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * 600;
    const step = b.x0 + ((x - 40) / (600 - 44)) * (b.x1 - b.x0);
    const parts = this.series.map((s) => {
      const p = nearest(s.points, step);
      return p ? `${s.label}: step ${p.step} = ${fmtNumber(p.value)}` : null;
    }).filter(Boolean);
    this.readout.textContent = parts.join(" · ");
  }
}

function downsample(points, sx, width) {
  const finite = points.filter((p) => typeof p.value === "number" && Number.isFinite(p.value));
  if (finite.length <= 2 * width) return finite;
  const kept = [];
  let column = null, first, last, low, high;
  const flush = () => {
    if (column === null) return;
    const group = [first, low, high, last].filter((p, i, all) => all.indexOf(p) === i);
    group.sort((a, b) => a.step - b.step);
    kept.push(...group);
  };
  for (const p of finite) {
    const c = Math.floor(sx(p.step));
    if (c !== column) { flush(); column = c; first = last = low = high = p; continue; }
    last = p;
    if (p.value < low.value) low = p;
    if (p.value > high.value) high = p;
  }
  flush();
  return kept;
}

function nearest(points, step) {
  if (!points.length) return null;
  let lo = 0, hi = points.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid].step < step) lo = mid + 1; else hi = mid;
  }
  const candidates = [points[lo], points[lo - 1]].filter(Boolean);
  return candidates.reduce((a, b) => (Math.abs(b.step - step) < Math.abs(a.step - step) ? b : a));
}

// Points by step, one per step (a resumed run's later point replaces an earlier one), kept sorted: appending a
// newer step is O(1), anything else re-sorts once before the next draw.
class Series {
  constructor() { this.list = []; this.index = new Map(); this.dirty = false; }
  add(step, value) {
    if (typeof step !== "number" || value === null || value === undefined) return;
    const number = typeof value === "number" ? value : Number(value);
    const at = this.index.get(step);
    if (at !== undefined) { this.list[at].value = number; return; }
    const last = this.list[this.list.length - 1];
    this.list.push({ step, value: number });
    if (last && last.step > step) this.dirty = true;
    else this.index.set(step, this.list.length - 1);
  }
  points() {
    if (this.dirty) {
      this.list.sort((a, b) => a.step - b.step);
      this.index = new Map(this.list.map((p, i) => [p.step, i]));
      this.dirty = false;
    }
    return this.list;
  }
}
