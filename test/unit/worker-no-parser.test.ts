/**
 * A worker never loads the SQL parser (libpg-query's WASM heap would be most of
 * its memory): it runs the frozen set rebuilt from its parsed JSON
 * (migrationSetFromJSON), and the control schema as trusted batches. Checked on
 * the worker's whole module graph: nothing in it may call into the parser
 * except the parser's own module and the builder that only the CLI uses.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrationSetFromJSON } from '../../src/core/migration-set.js';

function moduleGraph(entry: string): string[] {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(/from\s+['"](\.[^'"]+)['"]/g)) todo.push(join(dirname(file), m[1]!).replace(/\.js$/, '.ts'));
  }
  return [...seen].sort();
}

describe('workers never load the SQL parser', () => {
  const graph = moduleGraph('src/worker/worker.ts');

  it('nothing a worker imports calls the parser or the set builder', () => {
    expect(graph).toContain('src/worker/processor.ts');
    expect(graph).toContain('src/control/store.ts');
    const callers = graph.filter((f) => /\b(loadParser|buildMigrationSet|splitStatements|parseSync|loadModule)\(/.test(readFileSync(f, 'utf8')));
    // their definitions (buildMigrationSet loads the parser; only the CLI and tests call it)
    expect(callers).toEqual(['src/core/migration-set.ts', 'src/core/statements.ts']);
  });

  it('a frozen set without its parsed form is refused, not parsed', () => {
    expect(() => migrationSetFromJSON([{ name: '001_a.sql', sql: 'SELECT 1', checksum: 'x' }], 'c')).toThrow(/001_a\.sql has no parsed form/);
  });
});
