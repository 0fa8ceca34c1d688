/**
 * HTML built from templates where every interpolated value is escaped, and every string
 * redacted on the way (core/redact.ts), unless it is already `Html` made here. Tenant ids,
 * errors and halt reasons are user data: a `<script>` in a migration's error message must
 * arrive as text. There is no other way to build HTML in the dashboard.
 */
import { redactSecrets } from '../core/redact.js';

/** A fragment of markup known to be safe (built by `html` or `raw`). */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text -> HTML text, safe in element content and in quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

type Value = Html | string | number | boolean | null | undefined | readonly Value[];

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return v.map(render).join('');
  return escapeHtml(redactSecrets(String(v)));
}

/** html`<td>${tenant.id}</td>`: values escaped (and redacted), `Html` values and arrays of them kept. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

/** Markup written in this code base (a script, a style sheet), never user data. */
export function raw(text: string): Html {
  return new Html(text);
}
