/**
 * Keeps the lint's lock table honest: each rule's failing example runs on a
 * real Postgres, in a transaction on a real table, and the strongest lock its
 * session then holds on that table (pg_locks) must be the one the rule
 * claims. VACUUM FULL cannot run in a transaction: it is started against a
 * table another session holds in ACCESS SHARE (which conflicts only with
 * ACCESS EXCLUSIVE) and must be found waiting for exactly that.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELATION_SIZES_SQL } from '../../src/adapters/pg/read-only.js';
import { RULES, type LockMode } from '../../src/core/lint/rules.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';
import { CASES, SETUP } from '../helpers/lint-plan-cases.js';

const MODES: Record<string, LockMode> = {
  AccessShareLock: 'ACCESS SHARE',
  RowShareLock: 'ROW SHARE',
  RowExclusiveLock: 'ROW EXCLUSIVE',
  ShareUpdateExclusiveLock: 'SHARE UPDATE EXCLUSIVE',
  ShareLock: 'SHARE',
  ShareRowExclusiveLock: 'SHARE ROW EXCLUSIVE',
  ExclusiveLock: 'EXCLUSIVE',
  AccessExclusiveLock: 'ACCESS EXCLUSIVE',
};
const ORDER = Object.values(MODES);
const strongest = (modes: string[]): LockMode | undefined =>
  modes.map((m) => MODES[m]!).reduce<LockMode | undefined>((a, b) => (a === undefined || ORDER.indexOf(b) > ORDER.indexOf(a) ? b : a), undefined);

let db: TestDatabase;
let client: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase('lintlocks');
  await db.query(SETUP);
  client = await db.client();
});
afterAll(async () => {
  await client?.end().catch(() => {});
  await dropAllTestDatabases();
});

describe('each rule claims the lock Postgres takes', () => {
  for (const c of CASES.filter((x) => x.table)) {
    it(`${c.rule}: ${RULES[c.rule].lock} on ${c.table}`, async () => {
      const oid = (await client.query(`SELECT $1::regclass::oid AS oid`, [c.table])).rows[0].oid;
      if (c.rule === 'vacuum-full') {
        const holder = await db.client();
        const victim = await db.client();
        try {
          await holder.query(`BEGIN; LOCK TABLE ${c.table} IN ACCESS SHARE MODE`);
          const running = victim.query(c.bad.join('\n')).catch((e) => e);
          let waiting: string[] = [];
          for (let i = 0; i < 100 && waiting.length === 0; i++) {
            await new Promise((r) => setTimeout(r, 50));
            waiting = (await client.query(`SELECT mode FROM pg_locks WHERE relation = $1 AND NOT granted AND locktype = 'relation'`, [oid])).rows.map(
              (r) => r.mode,
            );
          }
          expect(strongest(waiting)).toBe(RULES[c.rule].lock);
          await holder.query('ROLLBACK');
          expect(await running).not.toBeInstanceOf(Error);
        } finally {
          await holder.end();
          await victim.end();
        }
        return;
      }
      await client.query('BEGIN');
      try {
        for (const sql of c.bad) await client.query(sql);
        const held = await client.query(`SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' AND relation = $1 AND granted`, [
          oid,
        ]);
        expect(strongest(held.rows.map((r) => r.mode))).toBe(RULES[c.rule].lock);
      } finally {
        await client.query('ROLLBACK');
      }
    });
  }

  it('enum-value-used-in-transaction: Postgres refuses the failing example and runs the safer one', async () => {
    const c = CASES.find((x) => x.rule === 'enum-value-used-in-transaction')!;
    await client.query('BEGIN');
    try {
      const e = await (async () => {
        for (const sql of c.bad) await client.query(sql);
      })().catch((x) => x);
      expect(e?.code).toBe('55P04');
    } finally {
      await client.query('ROLLBACK');
    }
    // each file in its own transaction: accepted
    for (const sql of c.good) await client.query(`BEGIN; ${sql} COMMIT;`);
  });
});

describe('plan reads table sizes through the catalog indexes', () => {
  it('no sequential scan of pg_class or pg_index', async () => {
    await client.query('BEGIN; SET LOCAL enable_seqscan = off');
    try {
      const plan = await client.query(`EXPLAIN ${RELATION_SIZES_SQL}`, [
        ['orders', 'orders_x_idx', 'nope'],
        ['table', 'index', 'table'],
      ]);
      const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(text).toContain('pg_class_oid_index');
      expect(text).not.toMatch(/Seq Scan on pg_(class|index|namespace)/);
    } finally {
      await client.query('ROLLBACK');
    }
  });
});
