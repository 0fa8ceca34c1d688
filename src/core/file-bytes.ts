/**
 * A migration file's bytes become its text here, and only here.
 *
 * psql requires UTF-8 and so do we: bytes that are not valid UTF-8 are refused
 * before anything runs, naming the file, the line and the byte offset. Decoding
 * them anyway would store each bad byte as U+FFFD, run other SQL than the file
 * holds, and hide edits to those bytes from the checksum. NUL is refused too:
 * Postgres cannot take it in a query, and the parser would stop reading there.
 * A leading UTF-8 byte order mark is stripped, as psql does.
 *
 * Because only valid UTF-8 passes, the text is the bytes: `checksumOf(text)`
 * hashes exactly the file's bytes (BOM and CRLF line endings aside).
 *
 * The size limit protects the SQL parser (libpg-query compiled to WASM): its
 * heap is bounded, and past it the parser prints a memory dump and dies (then
 * every later parse in the process fails). Measured with libpg-query 18.1.5 on
 * the densest input we know (`SELECT 1,1,1,...`: one node per two bytes), 5 MiB
 * parses and 6 MiB dies; ordinary seed files (INSERTs) die between 32 and
 * 48 MiB. 4 MiB is safe for any content.
 */

/** The largest migration file we hand to the parser, in bytes. */
export const MAX_MIGRATION_BYTES = 4 * 1024 * 1024;

export interface EncodingProblem {
  file: string;
  /** 1-based line of the offending byte */
  line: number;
  /** 0-based offset of the offending byte in the file */
  byteOffset: number;
  reason: string;
}

const BOM = [0xef, 0xbb, 0xbf];

/** The file's text, or the first reason its bytes are not a migration's text. */
export function decodeMigrationBytes(file: string, bytes: Uint8Array): { sql: string } | { problem: EncodingProblem } {
  const start = bytes[0] === BOM[0] && bytes[1] === BOM[1] && bytes[2] === BOM[2] ? 3 : 0;
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return { problem: { file, line: 1, byteOffset: 0, reason: 'a UTF-16 byte order mark: the file is UTF-16, not UTF-8' } };
  }
  const bad = firstBadByte(bytes, start);
  if (bad) return { problem: { file, line: lineOfByte(bytes, bad.offset), byteOffset: bad.offset, reason: bad.reason } };
  return { sql: Buffer.from(bytes.buffer, bytes.byteOffset + start, bytes.length - start).toString('utf8') };
}

/**
 * The same rules for text that did not come from a file (the library's
 * buildMigrationSet, a frozen set): a leading BOM is dropped; NUL and lone
 * surrogates (which have no UTF-8 form) are refused.
 */
export function checkMigrationText(file: string, sql: string): { sql: string } | { problem: EncodingProblem } {
  const text = sql.charCodeAt(0) === 0xfeff ? sql.slice(1) : sql;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    let reason: string | undefined;
    if (c === 0) reason = 'a NUL character (0x00), which Postgres cannot take in SQL';
    else if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
      else reason = 'a lone UTF-16 surrogate, which has no UTF-8 form';
    } else if (c >= 0xdc00 && c <= 0xdfff) reason = 'a lone UTF-16 surrogate, which has no UTF-8 form';
    if (reason) {
      const before = text.slice(0, i);
      let line = 1;
      for (let j = 0; j < before.length; j++) if (before.charCodeAt(j) === 10) line++;
      return { problem: { file, line, byteOffset: Buffer.byteLength(before, 'utf8'), reason } };
    }
  }
  return { sql: text };
}

/** Bytes the text takes as UTF-8 (what the parser gets). */
export function byteLengthOf(sql: string): number {
  return Buffer.byteLength(sql, 'utf8');
}

function lineOfByte(bytes: Uint8Array, offset: number): number {
  let line = 1;
  // 0x0A never occurs inside a multi-byte UTF-8 sequence
  for (let i = 0; i < offset; i++) if (bytes[i] === 10) line++;
  return line;
}

const hex = (b: number) => `0x${b.toString(16).toUpperCase().padStart(2, '0')}`;

/**
 * The first byte that is not part of well-formed UTF-8 (Unicode table 3-7: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or a NUL. One pass.
 */
function firstBadByte(b: Uint8Array, from: number): { offset: number; reason: string } | undefined {
  const n = b.length;
  let i = from;
  while (i < n) {
    const c = b[i]!;
    if (c === 0) return { offset: i, reason: 'a NUL byte (0x00), which Postgres cannot take in SQL' };
    if (c < 0x80) {
      i++;
      continue;
    }
    let len: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return { offset: i, reason: `byte ${hex(c)} is not valid UTF-8` };
    for (let k = 1; k < len; k++) {
      const d = b[i + k];
      const [min, max] = k === 1 ? [lo, hi] : [0x80, 0xbf];
      if (d === undefined) return { offset: i, reason: `byte ${hex(c)} starts a UTF-8 sequence cut short by the end of the file` };
      if (d < min || d > max) return { offset: i, reason: `byte ${hex(c)} followed by ${hex(d)} is not valid UTF-8` };
    }
    i += len;
  }
  return undefined;
}
