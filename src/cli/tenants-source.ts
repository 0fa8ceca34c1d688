/**
 * The tenants a fleet command targets: read from a tenants file, a `--tenants-query` on the
 * control database, or the registry, then narrowed by the selection (core/tenants.ts decides).
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { loadParser, splitStatements } from '../core/statements.js';
import { parseTenantRows, parseTenantsFile, selectTenants, type Tenant } from '../core/tenants.js';
import type { ControlStore } from '../control/store.js';
import type { TenantsRequest } from './requests.js';

/**
 * --tenants-query: one SELECT, refused before it runs when it is anything else
 * (several statements would all run: `SELECT ...; DELETE FROM tenants`), and run
 * in a READ ONLY transaction so a function it calls cannot write either.
 */
async function runTenantsQuery(store: ControlStore, sql: string): Promise<unknown[]> {
  await loadParser();
  const split = splitStatements(sql);
  if ('error' in split) throw new ConfigError([`--tenants-query: SQL syntax error at line ${split.error.line}: ${split.error.message}`]);
  const [first, ...rest] = split.statements;
  if (!first) throw new ConfigError(['--tenants-query: no SQL statement']);
  if (rest.length) throw new ConfigError([`--tenants-query: ${split.statements.length} statements; give exactly one SELECT (nothing was run)`]);
  const tree = JSON.stringify(first.node);
  if (first.kind !== 'SelectStmt' || /"(InsertStmt|UpdateStmt|DeleteStmt|MergeStmt|intoClause)"/.test(tree)) {
    throw new ConfigError([`--tenants-query: must be a single SELECT that only reads (got ${first.label}); nothing was run`]);
  }
  const client = await store.pool.connect();
  try {
    await client.query('BEGIN TRANSACTION READ ONLY');
    const r = await client.query(sql);
    await client.query('COMMIT');
    return r.rows;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw new ConfigError([`--tenants-query: ${e instanceof Error ? e.message : String(e)}`]);
  } finally {
    client.release();
  }
}

/** The tenants of a file, a bad file refused before anything else is touched. */
export async function readTenantsFile(path: string): Promise<Tenant[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError([`--tenants ${path}: ${err?.code === 'ENOENT' ? 'file not found' : err.message}`]);
  }
  return parseTenantsFile(text, extname(path).toLowerCase() === '.json' ? 'json' : 'yaml', path);
}

/** Tenants from the file, the query or the registry, selected; the store is needed only for the last two. */
export async function loadTenants(req: TenantsRequest, store: ControlStore | undefined): Promise<Tenant[]> {
  let tenants: Tenant[];
  if (req.tenantsFile) tenants = await readTenantsFile(req.tenantsFile);
  else if (!store) throw new Error('loadTenants: a control store is needed without --tenants');
  else if (req.tenantsQuery) tenants = parseTenantRows(await runTenantsQuery(store, req.tenantsQuery));
  else {
    tenants = await store.registryTenants();
    if (!tenants.length) throw new ConfigError(['no tenants: pass --tenants <file> or --tenants-query <sql>']);
  }
  return selectTenants(tenants, req.selection);
}
