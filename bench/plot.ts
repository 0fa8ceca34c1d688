/**
 * A dependency-free SVG line chart (axes, ticks, grid, labels, legend), sized
 * for 640x400 by default. Used by the benchmarks to plot throughput against
 * the number of worker processes.
 */

export interface LineSeries {
  name: string;
  points: { x: number; y: number }[];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  width?: number;
  height?: number;
  /** x tick positions; default: the distinct x values when there are at most 12, nice ticks otherwise */
  xTicks?: number[];
  /** lower bound of the y axis; default 0 (or the smallest y if negative) */
  yMin?: number;
  /** print each point's y value next to its marker (default false) */
  pointLabels?: boolean;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
const DASHES = ['', '6 3', '2 3', '8 3 2 3'];

export function lineChartSvg(opts: LineChartOptions): string {
  const width = opts.width ?? 640;
  const height = opts.height ?? 400;
  const series = opts.series.map((s) => ({ ...s, points: s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)).sort((a, b) => a.x - b.x) }));
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);

  // y domain: from 0 (or yMin) to a nice maximum
  const yDataMin = ys.length ? Math.min(...ys) : 0;
  const yDataMax = ys.length ? Math.max(...ys) : 1;
  let y0 = opts.yMin ?? Math.min(0, yDataMin);
  let y1 = Math.max(yDataMax, y0);
  if (y1 === y0) y1 = y0 + (Math.abs(y0) || 1);
  const yTicks = niceTicks(y0, y1, 6);
  y0 = Math.min(y0, yTicks[0]!);
  y1 = Math.max(y1, yTicks[yTicks.length - 1]!);

  // x domain: the data range, or the ticks given
  const distinctX = [...new Set(xs)].sort((a, b) => a - b);
  const categorical = !opts.xTicks && distinctX.length > 0 && distinctX.length <= 12;
  let xTicks = opts.xTicks ?? (categorical ? distinctX : niceTicks(xs.length ? Math.min(...xs) : 0, xs.length ? Math.max(...xs) : 1, 8));
  if (xTicks.length === 0) xTicks = [0, 1];
  let x0 = Math.min(...xTicks, ...xs);
  let x1 = Math.max(...xTicks, ...xs);
  if (x1 === x0) {
    x0 -= 1;
    x1 += 1;
  } else if (categorical) {
    // keep the first and last markers off the axes
    const pad = (x1 - x0) * 0.04;
    x0 -= pad;
    x1 += pad;
  }

  // layout: legend on the right, sized to the longest series name
  const font = 12;
  const charW = font * 0.62;
  const legendW = series.length ? Math.ceil(Math.min(220, 40 + charW * Math.max(...series.map((s) => s.name.length)))) : 0;
  const yLabelW = Math.max(...yTicks.map((t) => fmt(t).length)) * charW;
  const m = { top: 40, right: Math.round(16 + legendW), bottom: 52, left: Math.round(30 + yLabelW + 14) };
  const pw = Math.max(10, width - m.left - m.right);
  const ph = Math.max(10, height - m.top - m.bottom);
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => m.top + ph - ((y - y0) / (y1 - y0)) * ph;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="${font}">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(opts.title)}</text>`);

  // grid and y ticks
  for (const t of yTicks) {
    const y = r(sy(t));
    out.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<line x1="${m.left - 5}" y1="${y}" x2="${m.left}" y2="${y}" stroke="#333"/>`);
    out.push(`<text x="${m.left - 8}" y="${y + 4}" text-anchor="end">${esc(fmt(t))}</text>`);
  }
  // x ticks
  for (const t of xTicks) {
    if (t < x0 || t > x1) continue;
    const x = r(sx(t));
    out.push(`<line x1="${x}" y1="${m.top}" x2="${x}" y2="${m.top + ph}" stroke="#f0f0f0"/>`);
    out.push(`<line x1="${x}" y1="${m.top + ph}" x2="${x}" y2="${m.top + ph + 5}" stroke="#333"/>`);
    out.push(`<text x="${x}" y="${m.top + ph + 19}" text-anchor="middle">${esc(fmt(t))}</text>`);
  }
  // axes
  out.push(`<line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}" stroke="#333"/>`);
  out.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="#333"/>`);
  out.push(`<text x="${r(m.left + pw / 2)}" y="${height - 12}" text-anchor="middle" font-size="13">${esc(opts.xLabel)}</text>`);
  const ly = r(m.top + ph / 2);
  out.push(`<text x="16" y="${ly}" text-anchor="middle" font-size="13" transform="rotate(-90 16 ${ly})">${esc(opts.yLabel)}</text>`);

  // series
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const dash = DASHES[Math.floor(i / COLORS.length) % DASHES.length]!;
    const pts = s.points.map((p) => `${r(sx(p.x))},${r(sy(p.y))}`);
    if (pts.length > 1)
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''} points="${pts.join(' ')}"><title>${esc(s.name)}</title></polyline>`,
      );
    for (const p of s.points) {
      out.push(`<circle cx="${r(sx(p.x))}" cy="${r(sy(p.y))}" r="3.5" fill="${color}"><title>${esc(`${s.name}: ${fmt(p.x)}, ${fmt(p.y)}`)}</title></circle>`);
      if (opts.pointLabels) {
        const right = sx(p.x) > m.left + pw - 30;
        out.push(
          `<text x="${r(sx(p.x) + (right ? -5 : 5))}" y="${r(sy(p.y) - 6)}" font-size="10" fill="${color}"${right ? ' text-anchor="end"' : ''}>${esc(fmt(p.y))}</text>`,
        );
      }
    }
  });

  // legend
  if (series.length) {
    const lx = width - legendW - 8;
    const lh = 18;
    out.push(`<rect x="${lx}" y="${m.top}" width="${legendW}" height="${series.length * lh + 8}" fill="#fff" stroke="#ccc"/>`);
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length]!;
      const dash = DASHES[Math.floor(i / COLORS.length) % DASHES.length]!;
      const y = m.top + 4 + i * lh + lh / 2;
      out.push(`<line x1="${lx + 6}" y1="${y}" x2="${lx + 26}" y2="${y}" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
      out.push(`<circle cx="${lx + 16}" cy="${y}" r="3" fill="${color}"/>`);
      const maxChars = Math.floor((legendW - 38) / charW);
      const name = s.name.length > maxChars ? `${s.name.slice(0, Math.max(1, maxChars - 1))}…` : s.name;
      out.push(`<text x="${lx + 30}" y="${y + 4}">${esc(name)}</text>`);
    });
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Ticks at 1, 2 or 5 x 10^k covering [lo, hi], about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) hi = lo + (Math.abs(lo) || 1);
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag) || 1;
  const start = Math.floor(lo / step + 1e-9) * step;
  const ticks: number[] = [];
  for (let v = start; v <= hi + step * 1e-9 || ticks.length < 2; v += step) {
    ticks.push(Number(v.toPrecision(12)));
    if (ticks.length > 100) break;
  }
  if (ticks[ticks.length - 1]! < hi - step * 1e-9) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(1);
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(a >= 100 ? 4 : 3)));
}

function r(v: number): number {
  return Math.round(v * 10) / 10;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
