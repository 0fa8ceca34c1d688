/**
 * Checksums make edits visible: sha256 of a migration's text with line endings
 * normalised (a CRLF checkout is not an edit), and one checksum for the whole
 * set (like Atlas's atlas.sum) so a rollout can name exactly what it froze.
 */
import { createHash } from 'node:crypto';

export function checksumOf(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n'), 'utf8').digest('hex');
}

export function setChecksum(entries: { name: string; checksum: string }[]): string {
  const h = createHash('sha256');
  for (const e of entries) h.update(`${e.name}\0${e.checksum}\n`);
  return h.digest('hex');
}
