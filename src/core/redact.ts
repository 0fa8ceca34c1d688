/**
 * Credential redaction for anything a human or a log will read: database and Redis URLs,
 * libpq conninfo strings, and free text (error messages, driver errors) that embeds them.
 *
 * When unsure where a password ends, we hide too much rather than too little: a userinfo
 * section runs up to the LAST "@", because people paste passwords containing an unencoded
 * "@" or "/" and the URL parser would otherwise split them and print the tail.
 */

const MASK = '***';

/** `${VAR}` is a reference to a secret, not a secret: keeping it tells the reader which variable. */
const PLACEHOLDER = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;

/** `scheme://userinfo@` inside free text; greedy so that it ends at the last "@" before whitespace. */
const URL_USERINFO_IN_TEXT = /([A-Za-z][A-Za-z0-9+.-]*:\/\/)(\S*)@/g;

/** `password=...` in conninfo (`password='it''s'`), query strings (`?password=x&`) and env dumps (`PGPASSWORD=x`). */
const PASSWORD_PAIR = /(password\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&]*)/gi;

function isHarmless(secret: string): boolean {
  return secret === '' || secret === MASK || PLACEHOLDER.test(secret);
}

/** `user:secret` → `user:***`; a userinfo without a password is returned unchanged. */
function maskUserinfo(userinfo: string): string {
  const user = /^[^:@]*/.exec(userinfo)?.[0] ?? '';
  const rest = userinfo.slice(user.length);
  if (rest === '') return userinfo;
  if (rest.startsWith(':') && isHarmless(rest.slice(1))) return userinfo;
  return `${user}:${MASK}`;
}

function maskPasswordPairs(text: string): string {
  return text.replace(PASSWORD_PAIR, (whole, key: string, value: string) => {
    const unquoted = /^(['"])(.*)\1$/s.exec(value)?.[2] ?? value;
    return isHarmless(unquoted) ? whole : `${key}${MASK}`;
  });
}

/**
 * Redacts one connection string: `postgres://app:s3cret@db:5432/acme` → `postgres://app:***@db:5432/acme`.
 * Also handles strings that are not valid URLs (no scheme, stray "@"), since those are exactly
 * the ones quoted in validation errors.
 */
export function redactUrl(url: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)?(.*)@/s.exec(url);
  const masked = m ? `${m[1] ?? ''}${maskUserinfo(m[2] ?? '')}@${url.slice(m[0].length)}` : url;
  return maskPasswordPairs(masked);
}

/** Redacts every `scheme://user:password@` and `password=...` found anywhere in `text`. */
export function redactSecrets(text: string): string {
  const urlsMasked = text.replace(URL_USERINFO_IN_TEXT, (_whole, scheme: string, userinfo: string) => `${scheme}${maskUserinfo(userinfo)}@`);
  return maskPasswordPairs(urlsMasked);
}

/** Untrusted input shown back in a message: quoted, and cut at 64 characters. */
export function quoteInput(value: unknown): string {
  const text = String(value);
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}
