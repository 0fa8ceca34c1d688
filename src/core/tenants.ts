/**
 * The tenants registry: untrusted input (a tenants file's text, or rows from the control
 * database) in, validated `Tenant` values out, with every problem reported at once.
 *
 * Pure: the caller reads the file or runs the query and passes the environment explicitly.
 * Secrets stay as `${VAR}` placeholders in `databaseUrl` until `resolveDatabaseUrl` is called
 * at connection time, so a parsed registry can be logged, diffed or stored without leaking.
 */
import { parseDocument } from 'yaml';
import * as z from 'zod';
import { cronProblem, isTimeZone } from './cron.js';
import { EmptySelectionError, SelectorError, TenantSelectionError, TenantsFileError, MissingEnvVarError } from './errors.js';
import { quoteInput as quote, redactSecrets, redactUrl } from './redact.js';

export interface MaintenanceWindow {
  /** Cron expression, evaluated in `tz`. */
  cron: string;
  /** Real elapsed minutes, so a window spanning a DST change is not stretched or shortened. */
  durationMinutes: number;
  /** IANA time zone; 'UTC' when the file does not say. */
  tz: string;
}

export interface Tenant {
  id: string;
  /** Unresolved: may contain `${VAR}` placeholders; see resolveDatabaseUrl. */
  databaseUrl: string;
  schema?: string;
  tags: string[];
  window?: MaintenanceWindow;
}

export type TenantsFormat = 'yaml' | 'json';

/**
 * Which tenants of a source (file, query, registry) a command targets. No input ever means
 * "everything" (promise 10): `all` must be said explicitly, and an empty id or tag is an error.
 */
export interface TenantSelection {
  /** Every tenant of the source (`--all`). Exclusive with `tags` and `ids`. */
  all?: boolean;
  /** A tenant must carry every listed tag. */
  tags?: readonly string[];
  /** A tenant must be one of these ids; an id missing from the registry is an error. */
  ids?: readonly string[];
}

/** Where the tenants come from, before selection. */
export type TenantSource = { kind: 'file'; path: string } | { kind: 'query'; sql: string } | { kind: 'registry' };

/** The selection flags as the CLI received them: untrusted (an unset shell variable is ""). */
export interface SelectorFlags {
  tenants?: unknown;
  tenantsQuery?: unknown;
  only?: unknown;
  tag?: unknown;
  all?: unknown;
}

export const TENANTS_QUERY_SOURCE = 'tenants query';

// the error classes live in core/errors.ts; re-exported for the callers that know them from here
export { EmptySelectionError, MissingEnvVarError, SelectorError, TenantSelectionError, TenantsFileError } from './errors.js';
export { scheduleProblems } from './cron.js';

// ---------------------------------------------------------------------------------------------
// Schemas. Ids and schema names end up in SQL, lock keys, job ids and file names, hence the
// narrow alphabets; messages never echo a URL except through redactUrl.

const SLUG = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const PG_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const SLUG_RULE = 'lowercase letters, digits, "_" or "-", starting with a letter or digit, at most 63 characters';

function databaseUrlProblem(template: string): string | undefined {
  const shown = quote(redactUrl(template));
  // Placeholders only ever hold credentials, so any value makes a well-formed URL.
  const substituted = template.replace(PLACEHOLDER, 'placeholder');
  if (substituted.includes('${')) {
    return `malformed \${...} placeholder in ${shown}; write \${NAME} with letters, digits and "_"`;
  }
  if (!/^postgres(ql)?:\/\//.test(substituted)) return `not a postgres:// or postgresql:// URL (got ${shown})`;
  let url: URL;
  try {
    url = new URL(substituted);
  } catch {
    return `not a valid URL (got ${shown}); percent-encode special characters or use a \${VAR} placeholder`;
  }
  if (url.hostname === '' && !url.searchParams.has('host')) return `has no host (got ${shown})`;
  return undefined;
}

const slug = z.string().regex(SLUG, { error: (iss) => `must be ${SLUG_RULE}; got ${quote(iss.input)}` });

const windowSchema = z.strictObject({
  cron: z.string().check((ctx) => {
    const problem = cronProblem(ctx.value);
    if (problem) ctx.issues.push({ code: 'custom', message: problem, input: ctx.value });
  }),
  durationMinutes: z
    .int({ error: (iss) => (iss.input === undefined ? undefined : 'must be a whole number of minutes') })
    .min(1, { error: 'must be between 1 and 1440 minutes' })
    .max(1440, { error: 'must be between 1 and 1440 minutes' }),
  tz: z
    .string()
    .refine(isTimeZone, { error: (iss) => `unknown time zone ${quote(iss.input)}; use an IANA name such as Europe/Paris` })
    .default('UTC'),
});

const tenantSchema = z.strictObject({
  id: slug,
  databaseUrl: z.string().check((ctx) => {
    const problem = databaseUrlProblem(ctx.value);
    if (problem) ctx.issues.push({ code: 'custom', message: problem, input: ctx.value });
  }),
  schema: z
    .string()
    .regex(PG_IDENTIFIER, {
      error: (iss) => `must be a plain Postgres identifier (letters, digits, "_", not starting with a digit, at most 63 characters); got ${quote(iss.input)}`,
    })
    .optional(),
  tags: z.array(slug).optional(),
  window: windowSchema.optional(),
});

const ALLOWED_FIELDS: Record<string, string[]> = {
  '': Object.keys(tenantSchema.shape),
  window: Object.keys(windowSchema.shape),
};

const TYPE_NAMES: Record<string, string> = { array: 'a list', object: 'an object (a mapping)', string: 'a string', number: 'a number', int: 'a whole number' };

/** Our wording for the generic issues; the specific ones carry their own message. */
const errorMap: z.core.$ZodErrorMap = (iss) => {
  if (iss.code !== 'invalid_type') return undefined;
  if (iss.input === undefined) return 'is required';
  const expected = TYPE_NAMES[iss.expected] ?? iss.expected;
  const yamlHint = iss.expected === 'string' && typeof iss.input === 'number' ? ' (quote it in YAML)' : '';
  return `must be ${expected}${yamlHint}`;
};

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const path = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const fields = issue.keys.map(quote).join(', ');
    const allowed = ALLOWED_FIELDS[path];
    const allowedText = allowed ? ` (allowed: ${allowed.join(', ')})` : '';
    return `${path === '' ? '' : `${path}: `}unknown field${issue.keys.length === 1 ? '' : 's'} ${fields}${allowedText}`;
  }
  return path === '' ? issue.message : `${path}: ${issue.message}`;
}

// ---------------------------------------------------------------------------------------------
// Validation of a list of entries, shared by files and query rows.

interface RawEntry {
  value: unknown;
  /** Problems found before schema validation (e.g. a row's window column is not JSON). */
  problems: string[];
}

function knownId(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const id = (value as { id?: unknown }).id;
  return typeof id === 'string' && SLUG.test(id) ? id : undefined;
}

function toTenant(parsed: z.output<typeof tenantSchema>): Tenant {
  const tenant: Tenant = { id: parsed.id, databaseUrl: parsed.databaseUrl, tags: parsed.tags ?? [] };
  if (parsed.schema !== undefined) tenant.schema = parsed.schema;
  if (parsed.window !== undefined) tenant.window = { ...parsed.window };
  return tenant;
}

function validateEntries(entries: RawEntry[], problems: string[]): Tenant[] {
  const tenants: Tenant[] = [];
  const firstSeen = new Map<string, number>();
  entries.forEach((entry, index) => {
    const id = knownId(entry.value);
    const label = `tenants[${index}]${id === undefined ? '' : ` (id "${id}")`}`;
    for (const p of entry.problems) problems.push(`${label}: ${p}`);
    const result = tenantSchema.safeParse(entry.value, { error: errorMap });
    if (result.success) {
      if (entry.problems.length === 0) tenants.push(toTenant(result.data));
    } else {
      for (const issue of result.error.issues) problems.push(`${label}: ${formatIssue(issue)}`);
    }
    if (id !== undefined) {
      const first = firstSeen.get(id);
      if (first === undefined) firstSeen.set(id, index);
      else problems.push(`tenants[${index}]: duplicate id "${id}" (first at tenants[${first}])`);
    }
  });
  return tenants;
}

function finish(tenants: Tenant[], problems: string[], source: string, origin: 'file' | 'query'): Tenant[] {
  // Belt and braces: library messages (YAML, cron) may quote input we did not write ourselves.
  if (problems.length > 0) throw new TenantsFileError(source, problems.map(redactSecrets), origin);
  return tenants;
}

// ---------------------------------------------------------------------------------------------
// Files.

/**
 * Offset of a JSON.parse error. V8 gives "at position N" for some errors; for an unexpected
 * token it instead quotes the source from 10 characters before the error ("...<context>...").
 * Returns undefined when neither form is recognised: the error is then reported without a line.
 */
function jsonErrorPosition(text: string, message: string): number | undefined {
  const explicit = /at position (\d+)/.exec(message);
  if (explicit) return Number(explicit[1]);
  const quoted = /^Unexpected token .*?, (\.\.\.)?"(.*)"(\.\.\.)? is not valid JSON$/s.exec(message);
  const context = quoted?.[2];
  if (!quoted || !context) return undefined;
  const at = text.indexOf(context);
  if (at < 0 || text.indexOf(context, at + 1) >= 0) return undefined;
  if (quoted[1]) return at + 10;
  if (quoted[3]) return at + context.length - 10;
  return undefined;
}

function parseText(text: string, format: TenantsFormat, problems: string[]): unknown {
  if (format === 'json') {
    try {
      const value = JSON.parse(text) as unknown;
      // JSON.parse keeps the last of two equal keys silently (a second databaseUrl wins); YAML, a superset
      // of JSON, refuses them: read the text once more for that alone
      const dup = parseDocument(text).errors.find((e) => e.code === 'DUPLICATE_KEY');
      if (dup) {
        const at = dup.linePos?.[0];
        problems.push(`JSON: a key given twice in one object${at ? ` at line ${at.line}, column ${at.col}` : ''}: keep one`);
        return undefined;
      }
      return value;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // V8 appends a snippet of the source to some messages; it could hold a password, so keep the reason only.
      const reason = (message.split(/,\s*(?:\.\.\.)?"/)[0] ?? '').replace(/\s+(?:in JSON\s+)?at position \d+.*$/s, '');
      const position = jsonErrorPosition(text, message);
      if (position === undefined) {
        problems.push(`JSON syntax error: ${reason}`);
      } else {
        const before = text.slice(0, position);
        const line = before.split('\n').length;
        const column = before.length - before.lastIndexOf('\n');
        problems.push(`JSON syntax error at line ${line}, column ${column}: ${reason}`);
      }
      return undefined;
    }
  }
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      // yaml's message is "<reason> at line L, column C:\n\n<source excerpt>"; the excerpt may hold a password.
      const reason = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      const at = e.linePos?.[0];
      problems.push(`YAML syntax error${at ? ` at line ${at.line}, column ${at.col}` : ''}: ${reason}`);
    }
    return undefined;
  }
  try {
    return doc.toJS() as unknown;
  } catch (err) {
    problems.push(`YAML error: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

/** The list of entries, or undefined when the document has none (a problem is then recorded). */
function entriesOfDocument(doc: unknown, problems: string[]): unknown[] | undefined {
  if (Array.isArray(doc)) return doc;
  if (doc === null || doc === undefined) {
    problems.push('the file is empty; expected "tenants:" followed by a list of tenants');
    return undefined;
  }
  if (typeof doc !== 'object') {
    problems.push('expected an object with a "tenants" list, or a list of tenants');
    return undefined;
  }
  const extra = Object.keys(doc).filter((k) => k !== 'tenants');
  if (extra.length > 0) problems.push(`unknown top-level field${extra.length === 1 ? '' : 's'} ${extra.map(quote).join(', ')} (allowed: tenants)`);
  const list = (doc as { tenants?: unknown }).tenants;
  if (list === undefined) {
    problems.push('missing the "tenants" list');
    return undefined;
  }
  if (list === null) return []; // "tenants:" with nothing under it
  if (!Array.isArray(list)) {
    problems.push('"tenants" must be a list');
    return undefined;
  }
  return list;
}

/**
 * Parses a tenants file: `{ tenants: [...] }` or a bare list, in YAML or JSON.
 * @param source the file name, quoted in the error.
 * @throws TenantsFileError listing every problem.
 */
export function parseTenantsFile(text: string, format: TenantsFormat, source: string): Tenant[] {
  const problems: string[] = [];
  const doc = parseText(text, format, problems);
  if (problems.length > 0) return finish([], problems, source, 'file');
  const list = entriesOfDocument(doc, problems);
  if (list?.length === 0) problems.push('the tenants list is empty; add at least one tenant');
  const tenants = validateEntries(
    (list ?? []).map((value) => ({ value, problems: [] })),
    problems,
  );
  return finish(tenants, problems, source, 'file');
}

// ---------------------------------------------------------------------------------------------
// Query rows.

/**
 * SQL hands us NULLs, snake_case, comma-separated tags and JSON text; fold those into the
 * file shape so both inputs go through the same schema.
 */
function normalizeRow(row: unknown): RawEntry {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) return { value: row, problems: [] };
  const problems: string[] = [];
  const value: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(row)) if (v !== null && v !== undefined) value[key] = v;
  if ('database_url' in value) {
    if ('databaseUrl' in value) problems.push('has both databaseUrl and database_url; keep one');
    else value.databaseUrl = value.database_url;
    delete value.database_url;
  }
  if (typeof value.tags === 'string') {
    value.tags = value.tags
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== '');
  }
  if (typeof value.window === 'string') {
    try {
      value.window = JSON.parse(value.window) as unknown;
    } catch {
      problems.push('window: not valid JSON');
      delete value.window;
    }
  }
  return { value, problems };
}

/**
 * Validates rows from the control database (columns id, databaseUrl or database_url, schema,
 * tags, window). Select exactly those columns: any other column is refused like an unknown field.
 * @throws TenantsFileError listing every problem.
 */
export function parseTenantRows(rows: readonly unknown[], source: string = TENANTS_QUERY_SOURCE): Tenant[] {
  const problems: string[] = [];
  if (rows.length === 0) problems.push('no tenants: the query returned no rows');
  const tenants = validateEntries(rows.map(normalizeRow), problems);
  return finish(tenants, problems, source, 'query');
}

// ---------------------------------------------------------------------------------------------
// Using tenants.

/**
 * Substitutes each `${VAR}` with the percent-encoded value from `env`, so a password holding
 * "@", ":" or "/" cannot change the URL's structure.
 * @throws MissingEnvVarError naming the variable (and tenant) only, never any value.
 */
export function resolveDatabaseUrl(template: string, env: Record<string, string | undefined>, tenantId?: string): string {
  return template.replace(PLACEHOLDER, (_whole, name: string) => {
    const value = env[name];
    if (value === undefined || value === '') throw new MissingEnvVarError(name, tenantId, value === '');
    return encodeURIComponent(value);
  });
}

const blank = (v: unknown): boolean => typeof v !== 'string' || v.trim() === '';

/** Problems of a selection value itself (wherever it came from: flags, a stored schedule). */
export function selectionProblems(sel: TenantSelection): string[] {
  const problems: string[] = [];
  const ids = sel.ids;
  const tags = sel.tags;
  if (ids !== undefined && (ids.length === 0 || ids.some(blank)))
    problems.push('--only: an empty tenant id (an unset shell variable?); list the ids, comma-separated');
  if (tags !== undefined && (tags.length === 0 || tags.some(blank))) problems.push('--tag: an empty tag (an unset shell variable?); give the tag');
  if (sel.all && (ids !== undefined || tags !== undefined)) problems.push('--all selects every tenant: give either --all or --only/--tag, not both');
  if (!sel.all && ids === undefined && tags === undefined) {
    problems.push('no tenant selector: pass --only <ids>, --tag <tag>, or --all to target every tenant (nothing is targeted by default)');
  }
  return problems;
}

/**
 * Reads the selection flags of `rollout` and `schedule` (`tenantsQuery` only where the command has it).
 * An empty value is an error whatever flag it came from; without --only, --tag or --all nothing is selected.
 * @throws SelectorError listing every problem.
 */
export function parseSelectorFlags(flags: SelectorFlags): { source: TenantSource; selection: TenantSelection } {
  const problems: string[] = [];
  const given = (v: unknown) => v !== undefined && v !== null && v !== false;
  if (given(flags.tenants) && blank(flags.tenants)) problems.push('--tenants: an empty file name (an unset shell variable?); give the tenants file');
  if (given(flags.tenantsQuery) && blank(flags.tenantsQuery))
    problems.push('--tenants-query: an empty query (an unset shell variable?); give the SQL that returns the tenants');
  if (given(flags.tenants) && given(flags.tenantsQuery)) problems.push('give --tenants <file> or --tenants-query <sql>, not both');
  const selection: TenantSelection = {};
  if (given(flags.only)) selection.ids = typeof flags.only === 'string' ? flags.only.split(',').map((x) => x.trim()) : [''];
  if (given(flags.tag)) selection.tags = (Array.isArray(flags.tag) ? flags.tag : [flags.tag]).map((x) => (typeof x === 'string' ? x.trim() : ''));
  if (flags.all === true) selection.all = true;
  problems.push(...selectionProblems(selection));
  if (problems.length) throw new SelectorError(problems);
  const source: TenantSource = given(flags.tenants)
    ? { kind: 'file', path: String(flags.tenants) }
    : given(flags.tenantsQuery)
      ? { kind: 'query', sql: String(flags.tenantsQuery) }
      : { kind: 'registry' };
  return { source, selection };
}

function describeSelection(sel: TenantSelection): string {
  const parts = [sel.ids ? `--only ${sel.ids.join(',')}` : '', sel.tags ? `--tag ${sel.tags.join(' ')}` : '', sel.all ? '--all' : ''].filter(Boolean);
  return parts.join(' ');
}

/**
 * Filters in registry order; every given criterion narrows the selection.
 * @throws SelectorError for an empty or missing selector, TenantSelectionError for unknown ids,
 *   EmptySelectionError when nothing matches.
 */
export function selectTenants(tenants: Tenant[], sel: TenantSelection): Tenant[] {
  const problems = selectionProblems(sel);
  if (problems.length) throw new SelectorError(problems);
  const ids = sel.ids ?? [];
  const tags = sel.tags ?? [];
  const known = new Set(tenants.map((t) => t.id));
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length > 0) throw new TenantSelectionError([...new Set(unknown)]);
  const wanted = new Set(ids);
  const chosen = tenants.filter((t) => (sel.all || wanted.size === 0 || wanted.has(t.id)) && tags.every((tag) => t.tags.includes(tag)));
  if (chosen.length === 0) {
    const missing = tags.filter((tag) => !tenants.some((t) => t.tags.includes(tag)));
    throw new EmptySelectionError(
      missing.length
        ? `${describeSelection(sel)} (no tenant has the tag${missing.length === 1 ? '' : 's'} ${missing.map((x) => JSON.stringify(x)).join(', ')})`
        : describeSelection(sel),
    );
  }
  return chosen;
}

/**
 * `host:port` of a tenant's server (port 5432 unless given), used to group tenants that share
 * a server. Works on unresolved templates; a host that is itself a placeholder is returned as written.
 */
export function serverKey(databaseUrl: string): string {
  const authority = databaseUrl.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '').split(/[/?#]/)[0] ?? '';
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  if (hostPort.includes('${')) return /:\d+$/.test(hostPort) ? hostPort : `${hostPort}:5432`;
  let url: URL;
  try {
    url = new URL(databaseUrl.replace(PLACEHOLDER, 'placeholder'));
  } catch {
    throw new TypeError(`cannot read host and port from ${redactUrl(databaseUrl)}`);
  }
  // libpq also accepts the host and port as query parameters (e.g. a Unix socket directory).
  // DNS names are case-insensitive, but the URL parser lowercases them only for http-like schemes.
  const host = url.hostname.toLowerCase() || url.searchParams.get('host') || 'localhost';
  const port = url.port || url.searchParams.get('port') || '5432';
  return `${host}:${port}`;
}

/**
 * Tenants whose database URL holds a password written literally (not a `${VAR}`
 * placeholder): in the userinfo (`user:pw@`) or as a `password=` parameter. The
 * caller warns: such a password is stored in the control database as written
 * (workers read their targets from there), though never printed, logged or put in Redis.
 */
export function tenantsWithLiteralPassword(tenants: readonly Tenant[]): string[] {
  const placeholder = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;
  const literal = (pw: string) => pw !== '' && !placeholder.test(pw);
  return tenants
    .filter((t) => {
      // up to the last "@" before the query: passwords pasted with an unencoded "/" or "@" count too
      const userinfo = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/(.*)@/s.exec(t.databaseUrl.split('?')[0]!)?.[1] ?? '';
      const colon = userinfo.indexOf(':');
      if (colon >= 0 && literal(userinfo.slice(colon + 1))) return true;
      const query = t.databaseUrl.split('?')[1]?.split('#')[0] ?? '';
      return query.split('&').some((p) => /^password=/i.test(p) && literal(decodeURIComponentSafe(p.slice('password='.length))));
    })
    .map((t) => t.id);
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
