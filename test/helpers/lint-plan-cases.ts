/**
 * One failing and one passing example per lint rule, shared by the unit test
 * (test/unit/lint-plan-rules.test.ts) and the test on a real Postgres that
 * the lock each rule claims is the one the server takes
 * (test/integration/lint-plan-locks.test.ts). `setup` builds the existing
 * tables the examples run against (in that test; lint sees them as existing
 * because no file of the set creates them).
 */
import type { RuleId } from '../../src/core/lint/rules.js';

export const SETUP = `
CREATE TABLE customers (id int PRIMARY KEY);
CREATE TABLE orders (id int PRIMARY KEY, x int, customer_id int, status text, note varchar(10));
CREATE INDEX orders_x_idx ON orders (x);
CREATE UNIQUE INDEX orders_x_uidx ON orders (x);
CREATE TABLE old_stuff (id int);
CREATE TYPE order_state AS ENUM ('new', 'shipped');
INSERT INTO customers SELECT g FROM generate_series(1, 100) g;
INSERT INTO orders SELECT g, g, g, 'new', 'n' FROM generate_series(1, 100) g;
`;

export interface RuleCase {
  rule: RuleId;
  /** files of the set, in order: the finding is in the last one (one file unless the rule is about a sequence) */
  bad: string[];
  good: string[];
  /** the table whose lock the rule names (the lock test reads pg_locks for it) */
  table?: string;
}

export const CASES: RuleCase[] = [
  {
    rule: 'create-index-not-concurrently',
    bad: ['CREATE INDEX orders_status_idx ON orders (status);'],
    good: ['CREATE TABLE fresh (id int, v int);\nCREATE INDEX fresh_v ON fresh (v);', 'CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status);'],
    table: 'orders',
  },
  {
    rule: 'drop-index-not-concurrently',
    bad: ['DROP INDEX orders_x_idx;'],
    good: ['DROP INDEX CONCURRENTLY orders_x_idx;'],
    table: 'orders',
  },
  {
    rule: 'add-column-volatile-default',
    bad: ['ALTER TABLE orders ADD COLUMN r float8 DEFAULT random();'],
    good: ["ALTER TABLE orders ADD COLUMN created timestamptz DEFAULT now(), ADD COLUMN kind text DEFAULT 'a';"],
    table: 'orders',
  },
  {
    rule: 'add-column-serial',
    bad: ['ALTER TABLE orders ADD COLUMN seq bigserial;'],
    good: ['ALTER TABLE orders ADD COLUMN seq bigint;'],
    table: 'orders',
  },
  {
    rule: 'add-column-generated-stored',
    bad: ['ALTER TABLE orders ADD COLUMN x2 int GENERATED ALWAYS AS (x * 2) STORED;'],
    good: ['CREATE TABLE fresh (x int);\nALTER TABLE fresh ADD COLUMN x2 int GENERATED ALWAYS AS (x * 2) STORED;'],
    table: 'orders',
  },
  {
    rule: 'set-not-null',
    bad: ['ALTER TABLE orders ALTER COLUMN x SET NOT NULL;'],
    good: [
      'ALTER TABLE orders ADD CONSTRAINT orders_x_nn CHECK (x IS NOT NULL) NOT VALID;',
      'ALTER TABLE orders VALIDATE CONSTRAINT orders_x_nn;',
      'ALTER TABLE orders ALTER COLUMN x SET NOT NULL;',
    ],
    table: 'orders',
  },
  {
    rule: 'alter-column-type',
    bad: ['ALTER TABLE orders ALTER COLUMN x TYPE bigint;'],
    good: ['CREATE TABLE fresh (x int);\nALTER TABLE fresh ALTER COLUMN x TYPE bigint;'],
    table: 'orders',
  },
  {
    rule: 'add-foreign-key',
    bad: ['ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);'],
    good: ['ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID;'],
    table: 'orders',
  },
  {
    rule: 'add-check-constraint',
    bad: ['ALTER TABLE orders ADD CONSTRAINT orders_x_pos CHECK (x > 0);'],
    good: ['ALTER TABLE orders ADD CONSTRAINT orders_x_pos CHECK (x > 0) NOT VALID;'],
    table: 'orders',
  },
  {
    rule: 'add-unique-constraint',
    bad: ['ALTER TABLE orders ADD CONSTRAINT orders_x_key UNIQUE (x);'],
    good: ['ALTER TABLE orders ADD CONSTRAINT orders_x_key UNIQUE USING INDEX orders_x_uidx;'],
    table: 'orders',
  },
  {
    rule: 'drop-column',
    bad: ['ALTER TABLE orders DROP COLUMN note;'],
    good: ['CREATE TABLE fresh (a int, b int);\nALTER TABLE fresh DROP COLUMN b;'],
    table: 'orders',
  },
  {
    rule: 'drop-table',
    bad: ['DROP TABLE old_stuff;'],
    good: ['CREATE TABLE scratch (a int);\nDROP TABLE scratch;'],
    table: 'old_stuff',
  },
  {
    rule: 'rename-column',
    bad: ['ALTER TABLE orders RENAME COLUMN note TO memo;'],
    good: ['CREATE TABLE fresh (a int);\nALTER TABLE fresh RENAME COLUMN a TO b;'],
    table: 'orders',
  },
  {
    rule: 'rename-table',
    bad: ['ALTER TABLE old_stuff RENAME TO older_stuff;'],
    good: ['CREATE TABLE fresh (a int);\nALTER TABLE fresh RENAME TO fresher;\nCREATE INDEX fresher_a ON fresher (a);'],
    table: 'old_stuff',
  },
  {
    rule: 'vacuum-full',
    bad: ['VACUUM FULL orders;'],
    good: ['VACUUM orders;'],
    table: 'orders',
  },
  {
    rule: 'cluster',
    bad: ['CLUSTER orders USING orders_pkey;'],
    good: ['CREATE TABLE fresh (a int PRIMARY KEY);\nCLUSTER fresh USING fresh_pkey;'],
    table: 'orders',
  },
  {
    rule: 'reindex-not-concurrently',
    bad: ['REINDEX TABLE orders;'],
    good: ['REINDEX TABLE CONCURRENTLY orders;'],
    table: 'orders',
  },
  {
    rule: 'enum-value-used-in-transaction',
    bad: ["ALTER TYPE order_state ADD VALUE 'paid';\nALTER TABLE orders ADD COLUMN state order_state DEFAULT 'paid';"],
    good: ["ALTER TYPE order_state ADD VALUE 'paid';", "ALTER TABLE orders ADD COLUMN state order_state DEFAULT 'paid';"],
  },
  {
    rule: 'data-change-without-where',
    bad: ["UPDATE orders SET status = 'old';"],
    good: ['UPDATE orders SET x = x + 1 WHERE id <= 10;', 'CREATE TABLE fresh (a int);\nDELETE FROM fresh;'],
    table: 'orders',
  },
];
