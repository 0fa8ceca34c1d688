import { setFlagsFromString } from 'node:v8';

/**
 * V8 settings for a worker's heap. A worker runs for days making short-lived garbage (query results,
 * job payloads, log lines); V8's defaults let the young generation grow to 32 MB and the old one
 * grow far between full collections, so a worker whose live heap is about 25 MB peaked at 151-166 MB
 * of RSS through 2,000 tenants. The young generation kept at its starting size and the old one
 * allowed 20% growth between full collections: 104-105 MB, with the same CPU time
 * (docs/performance.md, "Worker memory"). V8 reads both at each collection, so setting them at run
 * time works, if done before loading BullMQ, pg and the rest (loading them alone grows the young
 * generation to its largest). A setting of the operator's own (NODE_OPTIONS, node's command line)
 * is left as it is.
 */
export function workerHeapFlags(given: string): string[] {
  return [
    ...(/--semi[-_]space[-_]growth[-_]factor|--max[-_]semi[-_]space[-_]size/.test(given) ? [] : ['--semi-space-growth-factor=1']),
    ...(/--heap[-_]growing[-_]percent/.test(given) ? [] : ['--heap-growing-percent=20']),
  ];
}

/** Apply workerHeapFlags to this process: call before importing the worker's modules. */
export function applyWorkerHeapFlags(env: Record<string, string | undefined> = process.env): void {
  for (const flag of workerHeapFlags(`${env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`)) setFlagsFromString(flag);
}
