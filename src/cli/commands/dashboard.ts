/**
 * `flotilla dashboard --port 8080 [--host 127.0.0.1]`: a web page of the rollouts of this
 * fleet's control database (CONTROL_DATABASE_URL, REDIS_URL, FLOTILLA_QUEUE_PREFIX, as every
 * fleet command), live, with retry/cancel/resume for whoever holds FLOTILLA_DASHBOARD_TOKEN.
 * Runs until SIGINT/SIGTERM, then stops gracefully. Pages and routes: src/dashboard/app.ts.
 */
import { dashboardToken, TOKEN_VARIABLE } from '../../dashboard/auth.js';
import { createDashboard } from '../../dashboard/app.js';
import { commandBackend } from '../../dashboard/backend.js';
import { listen, parseListen } from '../../dashboard/server.js';
import { fleetContext, openStore } from '../context.js';
import type { Flags } from '../requests.js';
import type { CommandContext } from './single.js';

export async function dashboardRun(ctx: CommandContext, o: Flags, env: Record<string, string | undefined> = process.env): Promise<number> {
  // every setting is read (and refused, exit 2) before anything is opened
  const req = parseListen(o);
  const token = dashboardToken(env);
  const fctx = fleetContext(ctx, env);
  const store = await openStore(fctx.fleet, ctx.out);
  try {
    const dashboard = createDashboard({
      backend: commandBackend({ ...fctx, store }),
      token,
      audit: (line) => ctx.out.error(line),
      errors: (line) => ctx.out.error(line),
    });
    const running = await listen(dashboard, req);
    ctx.out.error(
      `dashboard listening on ${running.url} (${token ? 'retry, cancel and resume need the token' : `read-only: set ${TOKEN_VARIABLE} to allow retry, cancel and resume`}; Ctrl-C to stop)`,
    );
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    ctx.out.error('dashboard stopping (again to stop at once)');
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(130));
    await running.close();
  } finally {
    // a query riding out a control-database outage (pool.ts retries for a while) must not hold the exit
    await Promise.race([store.close(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
  }
  setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
  return 0;
}
