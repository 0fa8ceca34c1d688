/**
 * Issue 9 follow-up: only an ordinary table with exactly Flotilla's or the
 * guide's columns, of compatible types, is a tracking table (core/ledger-shape.ts).
 */
import { describe, expect, it } from 'vitest';
import { ledgerShape, type ColumnInfo } from '../../src/core/ledger-shape.js';

const col = (name: string, type: string, notNull = false, hasDefault = false): ColumnInfo => ({ name, type, notNull, hasDefault });
const GUIDE = [col('id', 'integer', true, true), col('name', 'character varying', true), col('executed_at', 'timestamp without time zone', false, true)];
const FLOTILLA = [
  col('name', 'text', true),
  col('checksum', 'text'),
  col('applied_at', 'timestamp with time zone', true, true),
  col('duration_ms', 'integer'),
  col('applied_by', 'text'),
];

describe('ledgerShape with the catalog', () => {
  it("the guide's and Flotilla's tables, as they are created, are ours", () => {
    expect(ledgerShape(GUIDE, 'r')).toMatchObject({ ours: true });
    expect(ledgerShape(FLOTILLA, 'r')).toEqual({ ours: true, missing: [] });
  });

  it('a lone name column (umzug), a partial Flotilla table, a view, a partitioned table, a name int: not ours, with the reason', () => {
    expect(ledgerShape([col('name', 'character varying', true)])).toMatchObject({ ours: false });
    expect(ledgerShape(FLOTILLA.slice(0, 3))).toMatchObject({ ours: false });
    expect(ledgerShape(GUIDE, 'v')).toMatchObject({ ours: false, reason: expect.stringContaining('a view') });
    expect(ledgerShape(GUIDE, 'p')).toMatchObject({ ours: false, reason: expect.stringContaining('partitioned') });
    expect(ledgerShape([GUIDE[0]!, col('name', 'integer'), GUIDE[2]!])).toMatchObject({
      ours: false,
      reason: expect.stringContaining('column name is integer'),
    });
    expect(ledgerShape([col('id', 'integer', true), GUIDE[1]!, GUIDE[2]!])).toMatchObject({
      ours: false,
      reason: expect.stringContaining('NOT NULL without a default'),
    });
  });
});
