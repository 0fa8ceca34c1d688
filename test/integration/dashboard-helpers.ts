/**
 * `flotilla dashboard` as a child process for the dashboard tests: started on a free port
 * (`--port 0`), its URL read from what it says on stderr.
 */
import { startCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/fleet.js';

export const TOKEN = 'test-token-0123456789abcdef';

export interface DashboardProcess {
  url: string;
  stderr(): string;
  /** SIGTERM; resolves with the exit code */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

export async function startDashboard(env: Record<string, string>, args: string[] = []): Promise<DashboardProcess> {
  const p = startCli(['dashboard', '--port', '0', ...args], { env, timeoutMs: 600_000 });
  let exited: number | undefined;
  void p.done.then((r) => (exited = r.code));
  const url = await waitFor(
    'the dashboard to listen',
    async () => {
      if (exited !== undefined) throw new Error(`dashboard exited with ${exited}:\n${p.stderr()}`);
      return /listening on (http:\/\/\S+)/.exec(p.stderr())?.[1];
    },
    60_000,
    50,
  );
  return {
    url,
    stderr: p.stderr,
    stop: async (signal = 'SIGTERM') => {
      if (exited === undefined) p.child.kill(signal);
      return (await p.done).code;
    },
  };
}
