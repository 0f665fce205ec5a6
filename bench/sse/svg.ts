// A grouped bar chart of the side-by-side benchmark, as a self-contained SVG: for each figure, each
// peer's value relative to nchan (1.0, the dashed line), with the absolute value on the bar.
import type { Figures } from './figures.js';

interface Metric {
  label: string;
  better: 'lower' | 'higher';
  value: (f: Figures) => number | undefined;
  unit: (v: number) => string;
}

const METRICS: Metric[] = [
  { label: 'CPU per delivered event', better: 'lower', value: (f) => f.cpuPerEvent, unit: (v) => `${v.toFixed(2)} µs` },
  { label: 'latency p99 at 5 updates/s', better: 'lower', value: (f) => f.p99, unit: (v) => `${v.toFixed(1)} ms` },
  { label: 'RSS per idle connection', better: 'lower', value: (f) => f.rssPerConnection, unit: (v) => `${(v / 1024).toFixed(1)} KiB` },
  { label: 'reconnect storm', better: 'lower', value: (f) => f.stormMs, unit: (v) => `${Math.round(v)} ms` },
  { label: 'deliveries per second', better: 'higher', value: (f) => f.deliveriesPerSecond, unit: (v) => `${Math.round(v / 1000)}k/s` },
  { label: 'publishes per second', better: 'higher', value: (f) => f.publishPerSecond, unit: (v) => `${Math.round(v)}/s` },
];

const COLORS = ['#6b7280', '#f59e0b', '#10b981', '#2563eb', '#7c3aed', '#db2777'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** The chart for `results` (peer name → figures), ratios to the peer named `nchan`. */
export function chart(results: Map<string, Figures>): string {
  const peers = [...results.keys()];
  const base = results.get('nchan');
  const rowHeight = 22 * peers.length + 34;
  const left = 200;
  const plot = 470;
  // Room right of the longest bar for its label.
  const width = left + plot + 150;
  const height = METRICS.length * rowHeight + 60;
  const maxRatio = 3;
  const x = (r: number) => left + (Math.min(r, maxRatio) / maxRatio) * plot;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="600">ssehub vs nchan, better-sse and bare node:http — relative to nchan (dashed line = 1×)</text>`,
  ];
  METRICS.forEach((metric, m) => {
    const top = 40 + m * rowHeight;
    parts.push(`<text x="10" y="${top + 14}" font-weight="600">${esc(metric.label)} (${metric.better} is better)</text>`);
    peers.forEach((peer, p) => {
      const f = results.get(peer) as Figures;
      const v = metric.value(f);
      const b = base === undefined ? undefined : metric.value(base);
      const y = top + 22 + p * 22;
      parts.push(`<text x="${left - 8}" y="${y + 13}" text-anchor="end">${esc(peer)}</text>`);
      if (v === undefined || b === undefined || b === 0) {
        parts.push(`<text x="${left + 4}" y="${y + 13}" fill="#999">not measured</text>`);
        return;
      }
      const r = v / b;
      parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, x(r) - left).toFixed(1)}" height="16" fill="${COLORS[p % COLORS.length]}"/>`);
      parts.push(`<text x="${(x(r) + 4).toFixed(1)}" y="${y + 13}">${r.toFixed(2)}× (${esc(metric.unit(v))})${r > maxRatio ? ' →' : ''}</text>`);
    });
    parts.push(`<line x1="${x(1)}" y1="${top + 18}" x2="${x(1)}" y2="${top + 22 + peers.length * 22}" stroke="#111" stroke-dasharray="4 3"/>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
