/**
 * `flotilla init`: a starting point in the current directory: the migrations
 * directory, flotilla.config.json (the defaults, written out so they can be
 * edited) and tenants.example.yaml. Never overwrites: what exists is kept and
 * said so.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { MigrationsDirError } from '../../core/errors.js';
import type { CommandContext } from './single.js';

export const CONFIG_FILE = 'flotilla.config.json';
export const TENANTS_EXAMPLE = 'tenants.example.yaml';

export function initialConfig(dir: string): string {
  return `${JSON.stringify(
    {
      dir,
      lockTimeout: '10s',
      statementTimeout: '1h',
      lockWaitTimeout: '5min',
      validation: { allowRowChanges: false, allowTableDrop: false, allowColumnDrop: false },
    },
    null,
    2,
  )}\n`;
}

export const TENANTS_EXAMPLE_TEXT = `# Tenants for \`flotilla rollout --tenants tenants.yaml --all\` (copy this file to tenants.yaml).
# databaseUrl may hold \${VAR} placeholders: only workers resolve them, from their own
# environment, so passwords stay out of this file, Redis and the control database.
tenants:
  - id: acme
    databaseUrl: postgres://app:\${ACME_PW}@db-1.internal:5432/acme
    tags: [eu, canary]
    # migrate only inside a maintenance window (cron, length, time zone)
    window: { cron: "0 2 * * SUN", durationMinutes: 120, tz: Europe/Paris }
  - id: globex
    databaseUrl: postgres://app:\${GLOBEX_PW}@db-2.internal:5432/globex
    tags: [us]
  # schema-per-tenant: several tenants in one database, one schema each
  - id: initech
    databaseUrl: postgres://app:\${SHARED_PW}@db-3.internal:5432/shared
    schema: tenant_initech
    tags: [us]
`;

export async function initCommand(ctx: CommandContext): Promise<number> {
  const created: string[] = [];
  const kept: string[] = [];
  const dir = ctx.config.dir;
  const shown = dir.replace(/^\.\//, '');
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new MigrationsDirError(dir, 'it exists and is not a directory');
    kept.push(`${shown}/`);
  } else {
    await mkdir(dir, { recursive: true });
    created.push(`${shown}/`);
  }
  for (const [file, text] of [
    [CONFIG_FILE, initialConfig(shown)],
    [TENANTS_EXAMPLE, TENANTS_EXAMPLE_TEXT],
  ] as const) {
    try {
      await writeFile(file, text, { flag: 'wx' });
      created.push(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      kept.push(file);
    }
  }
  if (ctx.out.json) {
    ctx.out.data({ created, kept });
    return 0;
  }
  for (const c of created) ctx.out.line(`✓ Created ${c}`);
  for (const k of kept) ctx.out.line(`= Kept ${k} (it exists; not overwritten)`);
  if (!created.length) ctx.out.line('Nothing to do: everything was already there.');
  ctx.out.line();
  ctx.out.line('Next: flotilla new create_users_table   (then write its SQL)');
  ctx.out.line('      DATABASE_URL=postgres://... flotilla pending --dry-run');
  return 0;
}
