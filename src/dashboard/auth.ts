/**
 * Who may press retry, cancel and resume: whoever sends `Authorization: Bearer <token>` with
 * the token of FLOTILLA_DASHBOARD_TOKEN. Without a token configured the dashboard is read-only
 * and every write is refused. The comparison takes the same time whatever the guess (both
 * sides hashed to 32 bytes, then `timingSafeEqual`), so a guess learns nothing from timing.
 *
 * A header, not a cookie: a page of another site cannot make the browser send it (no CORS is
 * served), so there is no cross-site request forgery to defend against.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../core/errors.js';

export const TOKEN_VARIABLE = 'FLOTILLA_DASHBOARD_TOKEN';
const MIN_TOKEN_LENGTH = 16;

/** The configured token, undefined for a read-only dashboard; a token too short to resist guessing is refused (exit 2). */
export function dashboardToken(env: Record<string, string | undefined>): string | undefined {
  const token = env[TOKEN_VARIABLE];
  if (token === undefined) return undefined;
  const problem =
    token === ''
      ? 'empty (an unset shell variable?)'
      : !/^[\x21-\x7e]+$/.test(token)
        ? 'holds a space or a character that is not printable ASCII (it travels in an HTTP header)'
        : token.length < MIN_TOKEN_LENGTH
          ? `shorter than ${MIN_TOKEN_LENGTH} characters`
          : undefined;
  if (problem)
    throw new ConfigError([`${TOKEN_VARIABLE}: ${problem}; set a long random token (e.g. \`openssl rand -hex 32\`), or unset it for a read-only dashboard`]);
  return token;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Does this Authorization header carry the token? Always false when no token is configured. */
export function authorized(header: string | undefined, token: string | undefined): boolean {
  if (token === undefined || header === undefined) return false;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!m) return false;
  return timingSafeEqual(digest(m[1]!), digest(token));
}
