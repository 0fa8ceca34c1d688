/**
 * Checksums make edits visible: sha256 of a migration's bytes with line endings
 * normalised (a CRLF checkout is not an edit), and one checksum for the whole
 * set (like Atlas's atlas.sum) so a rollout can name exactly what it froze.
 *
 * The text is hashed as UTF-8, and only valid UTF-8 files become text
 * (core/file-bytes.ts refuses the others), so this is the file's raw bytes,
 * less a leading BOM (stripped as psql does; adding one is not an edit).
 * Checksums recorded by earlier versions, computed the same way over the
 * decoded text, still match for every valid file.
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
