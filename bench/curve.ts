/** The throughput curve of `npm run bench -- --curve` as an SVG (docs/performance-curve.svg). */
import { lineChartSvg } from './plot.js';

export interface CurvePoint {
  workers: number;
  /** tenants per second */
  flotilla: number;
  floor: number;
  rssMb: number[];
}

export function curveSvg(points: CurvePoint[], tenants: number, concurrency: number): string {
  return lineChartSvg({
    title: `Rollout throughput, ${tenants} tenants (bench --curve)`,
    xLabel: `worker processes (concurrency ${concurrency} each)`,
    yLabel: 'tenants per second',
    series: [
      { name: 'flotilla', points: points.map((p) => ({ x: p.workers, y: p.flotilla })) },
      { name: 'floor', points: points.map((p) => ({ x: p.workers, y: p.floor })) },
    ],
    pointLabels: true,
  });
}
