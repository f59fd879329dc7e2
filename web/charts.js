// Time-series charts for the dashboard: a few lines over the last minutes, drawn as SVG, with
// vertical marks where something happened (hot restart, drain, backend restarted). No library: the
// data are a few hundred points per line, and the SVG stays inspectable in the page.

const NS = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 170;
const PAD = { left: 46, right: 10, top: 10, bottom: 22 };

const svgEl = (tag, attrs = {}, text) => {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
};

/** 1, 2, 5 × 10^n at or above `v`: a y-axis top that reads well. */
function niceCeil(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((c) => c >= v);
}

const short = (n) => (n >= 10_000 ? `${Math.round(n / 1000)}k` : n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(Math.round(n)));

/**
 * Draw `series` ([{ name, color, points: [[timeMs, value], ...] }]) over the window ending now,
 * with `marks` ([{ at: timeMs, label, kind }]) as dashed vertical lines.
 */
export function drawTimeChart(container, { series, marks = [], windowMs, now = Date.now(), unit = '' }) {
  const x0 = now - windowMs;
  const visible = series.map((s) => ({ ...s, points: s.points.filter(([t]) => t >= x0) }));
  const top = niceCeil(Math.max(1, ...visible.flatMap((s) => s.points.map(([, v]) => v))));
  const x = (t) => PAD.left + ((t - x0) / windowMs) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);

  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, class: 'timechart', role: 'img' });
  for (const frac of [0, 0.5, 1]) {
    const v = top * frac;
    svg.append(svgEl('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(svgEl('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, `${short(v)}${frac === 1 ? unit : ''}`));
  }
  for (const ago of [windowMs, windowMs / 2, 0]) {
    const label = ago === 0 ? 'now' : `−${Math.round(ago / 60_000) >= 1 ? `${Math.round(ago / 60_000)} min` : `${Math.round(ago / 1000)} s`}`;
    svg.append(svgEl('text', { x: x(now - ago), y: H - 6, 'text-anchor': ago === windowMs ? 'start' : ago === 0 ? 'end' : 'middle', class: 'tick' }, label));
  }
  for (const m of marks.filter((m) => m.at >= x0)) {
    svg.append(svgEl('line', { x1: x(m.at), x2: x(m.at), y1: PAD.top, y2: H - PAD.bottom, class: `mark ${m.kind}` }));
    svg.append(svgEl('text', { x: x(m.at) + 3, y: PAD.top + 9, class: `mark-label ${m.kind}` }, m.label));
  }
  for (const s of visible) {
    if (s.points.length === 0) continue;
    const d = s.points.map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('');
    svg.append(svgEl('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 1.8, 'data-series': s.name }));
  }
  const legend = document.createElement('div');
  legend.className = 'legend small';
  for (const s of visible) {
    const last = s.points.at(-1)?.[1];
    const item = document.createElement('span');
    item.innerHTML = `<span class="sw" style="background:${s.color}"></span>`;
    item.append(`${s.name}${last === undefined ? '' : ` ${short(last)}`}`);
    legend.append(item);
  }
  container.replaceChildren(svg, legend);
}

/** A color per backend id, stable across redraws. */
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#b07aa1', '#76b7b2', '#edc948', '#ff9da7', '#9c755f', '#bab0ac'];
const assigned = new Map();
export function colorOf(id) {
  if (!assigned.has(id)) assigned.set(id, PALETTE[assigned.size % PALETTE.length]);
  return assigned.get(id);
}
