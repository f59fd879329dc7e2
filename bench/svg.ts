// Tiny dependency-free SVG charts for the HTML report and the README: line charts (linear or log
// axes) and grouped bar charts. Output is a standalone <svg> element (xmlns set) usable inline in
// HTML or as a .svg file.

export interface Series {
  name: string;
  color: string;
  dashed?: boolean;
  points: Array<[number, number]>;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Custom x ticks as [x, label]; otherwise nice linear (or decade) ticks. */
  xTicks?: Array<[number, string]>;
  xLog?: boolean;
  yLog?: boolean;
  width?: number;
  height?: number;
}

export interface BarGroup {
  label: string;
  /** `missing` labels a bar without a value (default "n/a"), e.g. "failed". */
  bars: Array<{ name: string; value: number | null; color: string; missing?: string }>;
}

export interface BarChartOptions {
  title: string;
  yLabel: string;
  groups: BarGroup[];
  width?: number;
  height?: number;
  format?: (v: number) => string;
}

export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

function niceStep(range: number, count: number): number {
  const raw = range / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

function linearTicks(min: number, max: number, count = 5): number[] {
  const step = niceStep(max - min || 1, count);
  const out: number[] = [];
  // The last tick is the first one at or above max, so bars and lines never overshoot the axis.
  for (let v = Math.floor(min / step) * step; out.length < 50; v += step) {
    out.push(Number(v.toPrecision(12)));
    if (v >= max - step * 1e-9) break;
  }
  return out;
}

function decadeTicks(min: number, max: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) out.push(10 ** e);
  return out;
}

function shortNumber(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  if (a >= 100) return String(Math.round(v));
  if (a >= 1) return String(Number(v.toPrecision(3)));
  if (a === 0) return '0';
  return String(Number(v.toPrecision(2)));
}

function legend(items: Array<{ name: string; color: string; dashed?: boolean }>, x: number, y: number, maxWidth: number): { svg: string; height: number } {
  let cx = x;
  let cy = y;
  const parts: string[] = [];
  for (const it of items) {
    const w = 28 + it.name.length * 6.4;
    if (cx + w > x + maxWidth && cx > x) {
      cx = x;
      cy += 16;
    }
    parts.push(
      `<line x1="${cx}" y1="${cy - 4}" x2="${cx + 18}" y2="${cy - 4}" stroke="${it.color}" stroke-width="3"${it.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      `<text x="${cx + 22}" y="${cy}" font-size="11" ${FONT}>${esc(it.name)}</text>`,
    );
    cx += w;
  }
  return { svg: parts.join(''), height: cy - y + 16 };
}

export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 640;
  const height = o.height ?? 360;
  const pts = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.yLog || y > 0) && (!o.xLog || x > 0));
  const top = 34;
  const left = 62;
  const right = 16;
  const leg = legend(o.series, left, 0, width - left - right);
  const bottom = 46 + leg.height;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const head = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(o.title)}">` +
    `<rect width="100%" height="100%" fill="#fff"/><text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="600" ${FONT}>${esc(o.title)}</text>`;
  if (pts.length === 0) {
    return `${head}<text x="${width / 2}" y="${height / 2}" text-anchor="middle" font-size="12" fill="#888" ${FONT}>no data</text></svg>`;
  }
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  let [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  let [yMin, yMax] = [Math.min(...ys), Math.max(...ys)];
  if (o.xTicks) {
    xMin = Math.min(xMin, ...o.xTicks.map((t) => t[0]));
    xMax = Math.max(xMax, ...o.xTicks.map((t) => t[0]));
  }
  const yTicks = o.yLog ? decadeTicks(yMin, yMax) : linearTicks(0, yMax);
  if (o.yLog) {
    yMin = yTicks[0]!;
    yMax = yTicks[yTicks.length - 1]!;
  } else {
    yMin = 0;
    yMax = yTicks[yTicks.length - 1]! || 1;
  }
  const xTicks: Array<[number, string]> = o.xTicks ?? (o.xLog ? decadeTicks(xMin, xMax) : linearTicks(xMin, xMax)).map((t) => [t, shortNumber(t)]);
  if (o.xLog && !o.xTicks) {
    xMin = xTicks[0]![0];
    xMax = xTicks[xTicks.length - 1]![0];
  }
  const tx = (x: number) => {
    const [a, b, v] = o.xLog ? [Math.log10(xMin), Math.log10(xMax), Math.log10(x)] : [xMin, xMax, x];
    return left + (b === a ? plotW / 2 : ((v - a) / (b - a)) * plotW);
  };
  const ty = (y: number) => {
    const [a, b, v] = o.yLog ? [Math.log10(yMin), Math.log10(yMax), Math.log10(y)] : [yMin, yMax, y];
    return top + plotH - (b === a ? plotH / 2 : ((v - a) / (b - a)) * plotH);
  };
  const grid: string[] = [];
  for (const t of yTicks) {
    const y = ty(t).toFixed(1);
    grid.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#e5e5e5"/>`);
    grid.push(`<text x="${left - 6}" y="${Number(y) + 4}" text-anchor="end" font-size="11" fill="#444" ${FONT}>${shortNumber(t)}</text>`);
  }
  for (const [t, label] of xTicks) {
    const x = tx(t).toFixed(1);
    grid.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${top + plotH}" stroke="#f0f0f0"/>`);
    grid.push(`<text x="${x}" y="${top + plotH + 16}" text-anchor="middle" font-size="11" fill="#444" ${FONT}>${esc(label)}</text>`);
  }
  const lines = o.series.map((s) => {
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.yLog || y > 0) && (!o.xLog || x > 0));
    if (p.length === 0) return '';
    const d = p.map(([x, y], i) => `${i ? 'L' : 'M'}${tx(x).toFixed(1)},${ty(y).toFixed(1)}`).join('');
    const dots = p.length <= 12 ? p.map(([x, y]) => `<circle cx="${tx(x).toFixed(1)}" cy="${ty(y).toFixed(1)}" r="3" fill="${s.color}"/>`).join('') : '';
    return `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}><title>${esc(s.name)}</title></path>${dots}`;
  });
  const axes =
    `<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333"/>` +
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>` +
    `<text x="${left + plotW / 2}" y="${top + plotH + 34}" text-anchor="middle" font-size="12" ${FONT}>${esc(o.xLabel)}</text>` +
    `<text x="14" y="${top + plotH / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${top + plotH / 2})" ${FONT}>${esc(o.yLabel)}</text>`;
  const leg2 = legend(o.series, left, top + plotH + 56, width - left - right);
  return `${head}${grid.join('')}${axes}${lines.join('')}${leg2.svg}</svg>`;
}

export function barChart(o: BarChartOptions): string {
  const width = o.width ?? 640;
  const height = o.height ?? 340;
  const format = o.format ?? shortNumber;
  const names: Array<{ name: string; color: string }> = [];
  for (const g of o.groups) for (const b of g.bars) if (!names.some((n) => n.name === b.name)) names.push({ name: b.name, color: b.color });
  const top = 34;
  const left = 62;
  const right = 16;
  const leg = legend(names, left, 0, width - left - right);
  const bottom = 40 + leg.height;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const values = o.groups.flatMap((g) => g.bars.map((b) => b.value ?? 0));
  const ticks = linearTicks(0, Math.max(1e-9, ...values));
  const yMax = ticks[ticks.length - 1] || 1;
  const ty = (v: number) => top + plotH - (v / yMax) * plotH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(o.title)}">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="600" ${FONT}>${esc(o.title)}</text>`,
  ];
  for (const t of ticks) {
    const y = ty(t).toFixed(1);
    parts.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${left - 6}" y="${Number(y) + 4}" text-anchor="end" font-size="11" fill="#444" ${FONT}>${format(t)}</text>`);
  }
  const groupW = plotW / Math.max(1, o.groups.length);
  o.groups.forEach((g, gi) => {
    const n = Math.max(1, g.bars.length);
    const barW = Math.min(48, (groupW * 0.8) / n);
    const x0 = left + gi * groupW + (groupW - barW * n) / 2;
    g.bars.forEach((b, bi) => {
      const x = x0 + bi * barW;
      if (b.value === null || !Number.isFinite(b.value)) {
        parts.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${top + plotH - 4}" text-anchor="middle" font-size="10" fill="#c62828" ${FONT}>${esc(b.missing ?? 'n/a')}</text>`);
        return;
      }
      const y = ty(b.value);
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(top + plotH - y).toFixed(1)}" fill="${b.color}"><title>${esc(`${g.label} · ${b.name}: ${format(b.value)}`)}</title></rect>`,
      );
      if (barW >= 22) parts.push(`<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(y - 3).toFixed(1)}" text-anchor="middle" font-size="9" fill="#333" ${FONT}>${format(b.value)}</text>`);
    });
    parts.push(`<text x="${(left + gi * groupW + groupW / 2).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle" font-size="11" ${FONT}>${esc(g.label)}</text>`);
  });
  parts.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333"/>`);
  parts.push(`<text x="14" y="${top + plotH / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${top + plotH / 2})" ${FONT}>${esc(o.yLabel)}</text>`);
  parts.push(legend(names, left, top + plotH + 36, width - left - right).svg);
  parts.push('</svg>');
  return parts.join('');
}
