/**
 * Issue 12 §4: the deployment files say what the CLI accepts. Every flotilla command line in
 * docker-compose.yml and docs/k8s/ parses with the real program (unknown options would exit 2 in
 * a container, after a deploy), the worker's and rollout's requests parse, and each worker's grace
 * period (compose `stop_grace_period`, Kubernetes `terminationGracePeriodSeconds`) covers its
 * --drain-timeout with a margin. (scripts/package-check.sh, run by .ci/run, builds and installs
 * the package as the image does.)
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildProgram, mergedOptions } from '../../src/cli/main.js';
import { parseRolloutCreate, parseWorker } from '../../src/cli/requests.js';
import { parseDuration } from '../../src/config.js';
import { REPO } from '../helpers/cli.js';

/** argv -> the command path and its merged options, or the parse error; nothing runs. */
async function parseArgs(args: string[]): Promise<{ path: string; options: Record<string, any> }> {
  let seen: { path: string; options: Record<string, any> } | undefined;
  const program = buildProgram(async (_action, cmd) => {
    const names: string[] = [];
    for (let c: typeof cmd | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
    seen = { path: names.join(' '), options: mergedOptions(cmd) };
  });
  const quiet = (c: typeof program) => {
    c.configureOutput({ writeErr: () => {}, writeOut: () => {} });
    for (const sub of c.commands) quiet(sub);
  };
  quiet(program);
  await program.parseAsync(['node', 'flotilla', ...args]);
  if (!seen) throw new Error(`no command ran for: ${args.join(' ')}`);
  return seen;
}

const compose = parse(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8'), { merge: true });
const k8sDir = join(REPO, 'docs', 'k8s');
const k8s = readdirSync(k8sDir)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => parseAllDocuments(readFileSync(join(k8sDir, f), 'utf8')).map((d) => ({ file: f, doc: d.toJS() })));
const podSpec = (doc: any) => doc?.spec?.template?.spec;
const known = async (name: string) => buildProgram(async () => {}).commands.some((c) => c.name() === name);

describe('deployment files', () => {
  it('docker-compose.yml: every flotilla command parses; workers get a grace period longer than their drain', async () => {
    const services = Object.entries(compose.services as Record<string, any>).filter(([, s]) => s.image === 'flotilla:local');
    expect(services.map(([n]) => n).sort()).toEqual(['dashboard', 'rollout', 'worker']);
    for (const [name, s] of services) {
      if (!(await known(s.command[0]))) continue; // `flotilla dashboard` comes with the dashboard's branch
      const { path, options } = await parseArgs(s.command);
      expect(path, name).toBe(s.command[0]);
      if (path === 'worker') {
        const req = parseWorker(options, {});
        expect(s.deploy.replicas).toBe(2);
        expect(req.metrics).toEqual({ host: '0.0.0.0', port: 9464 });
        expect(parseDuration(s.stop_grace_period)!).toBeGreaterThanOrEqual(req.drainTimeoutMs + 5000);
      }
      if (path === 'rollout') expect(parseRolloutCreate(options).wait).toBe(true);
    }
    // the demo's files exist where the services mount them
    for (const v of [...compose['x-flotilla'].volumes, ...compose.services.postgres.volumes] as string[])
      expect(existsSync(join(REPO, v.split(':')[0]!)), v).toBe(true);
  });

  it('docs/k8s: the containers parse; the worker Deployment grace period covers its drain timeout', async () => {
    const pods = k8s.filter((x) => podSpec(x.doc));
    expect(pods.map((p) => p.doc.kind).sort()).toEqual(['Deployment', 'Deployment', 'Job']);
    let workers = 0;
    for (const { file, doc } of pods) {
      const spec = podSpec(doc);
      expect(spec.securityContext.runAsNonRoot, file).toBe(true);
      for (const c of spec.containers) {
        expect(c.envFrom, file).toEqual([{ secretRef: { name: 'flotilla' } }]);
        if (!(await known(c.args[0]))) continue;
        const { path, options } = await parseArgs(c.args);
        if (path === 'worker') {
          workers++;
          const req = parseWorker(options, {});
          expect(spec.terminationGracePeriodSeconds * 1000, file).toBeGreaterThanOrEqual(req.drainTimeoutMs + 10_000);
          expect(c.ports.find((p: any) => p.name === 'metrics').containerPort).toBe(req.metrics?.port);
          expect(c.readinessProbe.httpGet.path).toBe('/healthz');
        }
        if (path === 'rollout') {
          const req = parseRolloutCreate(options);
          expect(req.wait).toBe(true);
          expect(req.settings.notify).toEqual(['${SLACK_WEBHOOK_URL}']);
          expect(doc.spec.backoffLimit).toBe(0);
        }
      }
    }
    expect(workers).toBe(1);
    const secret = k8s.find((x) => x.doc.kind === 'Secret')!.doc;
    expect(Object.keys(secret.stringData).sort()).toEqual(['CONTROL_DATABASE_URL', 'REDIS_URL', 'SLACK_WEBHOOK_URL', 'TENANT_PW']);
  });

  it('an option a command does not have is caught by this check', async () => {
    await expect(parseArgs(['worker', '--drain-timout', '30s'])).rejects.toThrow(/unknown option/);
  });
});
