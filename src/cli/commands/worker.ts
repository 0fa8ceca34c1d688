/** `flotilla worker`: take tenant jobs from Redis and migrate them until SIGTERM/SIGINT, then drain. */
import { checkRedis } from '../../adapters/redis.js';
import { startWorker } from '../../worker/worker.js';
import { fleetContext } from '../context.js';
import { parseWorker, type Flags } from '../requests.js';
import type { CommandContext } from './single.js';

export async function workerRun(ctx: CommandContext, o: Flags, env: Record<string, string | undefined> = process.env): Promise<number> {
  const { fleet } = fleetContext(ctx, env);
  await checkRedis(fleet.redisUrl);
  const req = parseWorker(o, env);
  const worker = await startWorker({ ...fleet, ...req, controlRetryMs: fleet.controlRetryMs }, ctx.logger);
  if (!ctx.out.json) ctx.out.error(`worker ${worker.id} started (Ctrl-C to drain and stop)${worker.metricsUrl ? `; metrics on ${worker.metricsUrl}` : ''}`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await worker.close();
  // abandoned jobs (drain timeout) may still hold tenant connections: do not let them keep the process alive
  setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
  return 0;
}
