/**
 * Notification targets (`rollout --notify <url>`, the config file's `notify` list): what is
 * accepted, how one is shown in logs, and how a sender resolves it. A webhook URL often is a
 * secret (Slack's path is a token), so:
 *   - a target may be, or contain, `${VAR}` placeholders; the control database keeps them
 *     unresolved and only the process that sends resolves them, from its own environment
 *     (`--notify '${SLACK_WEBHOOK_URL}'` is the recommended form);
 *   - a target is never logged or printed in full: `describeTarget` keeps the scheme and host.
 * Pure: no network, no database.
 */
import { ConfigError } from '../core/errors.js';

const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const ONLY_PLACEHOLDER = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;

/** Why this target is refused, or undefined when it is acceptable (before its placeholders are resolved). */
export function targetProblem(target: string): string | undefined {
  if (target.trim() === '') return 'is empty (an unset shell variable?): give a URL or leave the option out';
  if (ONLY_PLACEHOLDER.test(target)) return undefined;
  const probe = target.replace(PLACEHOLDER, 'x');
  if (!/^https?:\/\//i.test(probe) || !URL.canParse(probe)) return 'must be an http:// or https:// URL, or a ${VAR} holding one';
  return undefined;
}

/** Every problem of a list of targets at once (exit 2), each named without its secret part. */
export function parseTargets(source: string, targets: readonly string[]): string[] {
  const problems = targets.flatMap((t) => {
    const p = targetProblem(t);
    return p ? [`${source}: ${t.trim() === '' ? 'a value' : JSON.stringify(describeTarget(t))} ${p}`] : [];
  });
  if (problems.length) throw new ConfigError(problems);
  return [...new Set(targets)];
}

/**
 * A target as logs and messages show it: `https://hooks.slack.com/…` (scheme and host; path,
 * query and credentials left out), or the placeholder itself (`${SLACK_WEBHOOK_URL}`).
 */
export function describeTarget(target: string): string {
  if (ONLY_PLACEHOLDER.test(target)) return target;
  const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(?:[^@/?#]*@)?([^/?#]*)/.exec(target);
  if (!m) return '(not a URL)';
  const rest = target.slice(m[0].length);
  return `${m[1]}${m[2]}${rest ? '/…' : ''}`;
}

/** The URL to POST to, from this process's environment; throws naming the missing variable. */
export function resolveTarget(target: string, env: Record<string, string | undefined>): string {
  const missing: string[] = [];
  const url = target.replace(PLACEHOLDER, (_all, name: string) => {
    const v = env[name];
    if (v === undefined || v === '') missing.push(name);
    return v ?? '';
  });
  if (missing.length)
    throw new Error(`environment variable ${missing.join(', ')} is not set in this process (needed by notify target ${describeTarget(target)})`);
  const problem = targetProblem(url);
  if (problem) throw new Error(`notify target ${describeTarget(target)} resolves to something that ${problem}`);
  return url;
}
