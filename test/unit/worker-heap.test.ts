/**
 * A worker keeps its heap small with two V8 settings made at run time (cli/heap.ts
 * workerHeapFlags; figures in docs/performance.md, "Worker memory"): the operator's own settings
 * win, and the settings really take effect when set after start-up (V8 reads them at each
 * collection), which a Node upgrade could change: checked in a child process on garbage like a
 * worker's.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { workerHeapFlags } from '../../src/cli/heap.js';
import { REPO } from '../helpers/fleet-base.js';

describe('the worker heap settings', () => {
  it('both by default; an operator setting of either is left alone, in either spelling', () => {
    expect(workerHeapFlags('')).toEqual(['--semi-space-growth-factor=1', '--heap-growing-percent=20']);
    expect(workerHeapFlags('--max-semi-space-size=8')).toEqual(['--heap-growing-percent=20']);
    expect(workerHeapFlags('--enable-source-maps --semi_space_growth_factor=2')).toEqual(['--heap-growing-percent=20']);
    expect(workerHeapFlags('--heap-growing-percent=50 ')).toEqual(['--semi-space-growth-factor=1']);
    expect(workerHeapFlags('--max-semi-space-size=8 --heap-growing-percent=50')).toEqual([]);
  });

  it("set at run time before the worker's modules load, they keep the young generation at its start size through loading and a stream of short-lived garbage", () => {
    const heap = pathToFileURL(join(REPO, 'dist/cli/heap.js')).href;
    const worker = pathToFileURL(join(REPO, 'dist/cli/commands/worker.js')).href;
    const script = (apply: boolean) => `
      import { getHeapSpaceStatistics } from 'node:v8';
      import { applyWorkerHeapFlags } from ${JSON.stringify(heap)};
      if (${apply}) applyWorkerHeapFlags({});
      await import(${JSON.stringify(worker)});
      let keep = [];
      for (let i = 0; i < 2e6; i++) { keep.push({ i, s: 'row ' + i }); if (keep.length > 50000) keep = []; }
      process.stdout.write(String(getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size));`;
    const newSpace = (apply: boolean) => Number(execFileSync(process.execPath, ['--input-type=module', '-e', script(apply)], { encoding: 'utf8', env: {} }));
    const MB = 1024 * 1024;
    expect(newSpace(false), 'without them V8 grows it').toBeGreaterThan(4 * MB);
    expect(newSpace(true)).toBeLessThanOrEqual(2 * MB);
  });
});
