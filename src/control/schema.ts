/**
 * The control database's own schema, applied with Flotilla's engine (the same
 * one that migrates tenants) into schema `flotilla`, tracking table
 * `flotilla.control_migrations`. Append new files; never edit applied ones.
 * control/migrate.ts applies them.
 */
import type { MigrationFile } from '../core/migration-set.js';
import { NOTIFY_MIGRATION } from '../notify/schema.js';

export const CONTROL_SCHEMA = 'flotilla';
export const CONTROL_TRACKING_TABLE = 'control_migrations';

/** A control table's qualified name (the schema is fixed: see CONTROL_SCHEMA). */
export const T = (name: string): string => `${CONTROL_SCHEMA}.${name}`;

export const CONTROL_MIGRATIONS: MigrationFile[] = [
  {
    name: '001_control_tables.sql',
    sql: `
-- flotilla:validate off
CREATE TABLE tenants (
  id text PRIMARY KEY,
  -- as written in the tenants file: \${VAR} placeholders stay unresolved here and
  -- are resolved only inside the worker that connects
  database_url text NOT NULL,
  schema text,
  tags text[] NOT NULL DEFAULT '{}',
  maintenance_window jsonb,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- a frozen migration set: what a rollout runs, whatever is deployed on workers
CREATE TABLE migration_sets (
  checksum text PRIMARY KEY,
  files jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rollouts (
  id text PRIMARY KEY,
  set_checksum text NOT NULL REFERENCES migration_sets (checksum),
  -- running | succeeded | failed | halted | cancelled
  state text NOT NULL,
  halt_reason text,
  options jsonb NOT NULL,
  current_wave integer NOT NULL DEFAULT 0,
  wave_count integer NOT NULL,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);

CREATE TABLE rollout_tenants (
  rollout_id text NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
  tenant_id text NOT NULL,
  position integer NOT NULL,
  wave integer NOT NULL,
  -- host:port of the tenant's server, for --per-server
  server text NOT NULL,
  -- pending | scheduled | running | succeeded | failed | cancelled
  state text NOT NULL DEFAULT 'pending',
  -- bumped by retry, part of the job id so a retry is a new job
  generation integer NOT NULL DEFAULT 0,
  dispatched_at timestamptz,
  not_before timestamptz,
  attempts integer NOT NULL DEFAULT 0,
  applied text[] NOT NULL DEFAULT '{}',
  error jsonb,
  checks jsonb,
  worker text,
  started_at timestamptz,
  finished_at timestamptz,
  duration_ms integer,
  PRIMARY KEY (rollout_id, tenant_id)
);
CREATE INDEX rollout_tenants_dispatch ON rollout_tenants (rollout_id, wave, state);

-- one row per attempt: the history that survives Redis being flushed
CREATE TABLE attempts (
  rollout_id text NOT NULL,
  tenant_id text NOT NULL,
  generation integer NOT NULL,
  attempt integer NOT NULL,
  kind text NOT NULL,
  state text NOT NULL,
  applied text[] NOT NULL DEFAULT '{}',
  error jsonb,
  worker text,
  started_at timestamptz,
  finished_at timestamptz NOT NULL DEFAULT now(),
  duration_ms integer,
  PRIMARY KEY (rollout_id, tenant_id, generation, kind, attempt)
);

CREATE TABLE schedules (
  name text PRIMARY KEY,
  cron text NOT NULL,
  tz text NOT NULL,
  set_checksum text NOT NULL REFERENCES migration_sets (checksum),
  selection jsonb NOT NULL,
  options jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    name: '002_rollout_counters.sql',
    sql: `
-- flotilla:validate off
-- Maintained by dispatch (exact, from the tenants) and by each finished tenant
-- (minus one): lets a finishing tenant skip a full dispatch while the window is
-- still well filled. Only a hint: every dispatch recomputes them.
ALTER TABLE rollouts
  ADD COLUMN in_flight integer NOT NULL DEFAULT 0,
  ADD COLUMN waiting integer NOT NULL DEFAULT 0;
`,
  },
  {
    name: '003_record_attempt.sql',
    sql: `
-- flotilla:validate off
-- A worker records an attempt in one round trip and one short transaction:
-- the rollout row is locked first (as dispatch does), then the attempt, then
-- the tenant's final state and the rollout's in-flight count. Replaying it
-- changes nothing. Returns what the caller needs to decide on a dispatch.
CREATE FUNCTION record_attempt(
  p_rollout text, p_tenant text, p_generation integer, p_attempt integer, p_kind text, p_state text,
  p_applied text[], p_error jsonb, p_checks jsonb, p_worker text, p_started timestamptz, p_duration integer,
  OUT rollout_state text, OUT options jsonb, OUT in_flight integer, OUT waiting integer, OUT finished boolean)
LANGUAGE plpgsql AS $fn$
DECLARE n integer := 0;
BEGIN
  SELECT r.state, r.options, r.in_flight, r.waiting INTO rollout_state, options, in_flight, waiting
    FROM flotilla.rollouts r WHERE r.id = p_rollout FOR UPDATE;
  INSERT INTO flotilla.attempts (rollout_id, tenant_id, generation, attempt, kind, state, applied, error, worker, started_at, duration_ms)
  VALUES (p_rollout, p_tenant, p_generation, p_attempt, p_kind, p_state, p_applied, p_error, p_worker, p_started, p_duration)
  ON CONFLICT (rollout_id, tenant_id, generation, kind, attempt) DO UPDATE
    SET state = EXCLUDED.state, applied = EXCLUDED.applied, error = EXCLUDED.error, finished_at = now(), duration_ms = EXCLUDED.duration_ms;
  IF p_state IN ('succeeded', 'failed') THEN
    UPDATE flotilla.rollout_tenants t
       SET state = p_state, applied = CASE WHEN p_kind = 'validate' THEN t.applied ELSE p_applied END, error = p_error,
           checks = coalesce(p_checks, t.checks), finished_at = now(),
           duration_ms = (extract(epoch FROM now() - coalesce(t.started_at, now())) * 1000)::int
     WHERE t.rollout_id = p_rollout AND t.tenant_id = p_tenant AND t.generation = p_generation AND t.state IN ('running', 'pending', 'scheduled');
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
      UPDATE flotilla.rollouts r SET in_flight = r.in_flight - 1 WHERE r.id = p_rollout;
      in_flight := in_flight - 1;
    END IF;
  ELSE
    UPDATE flotilla.rollout_tenants t SET error = p_error WHERE t.rollout_id = p_rollout AND t.tenant_id = p_tenant AND t.generation = p_generation;
  END IF;
  finished := n > 0;
END
$fn$;
`,
  },
  {
    name: '004_frozen_targets.sql',
    sql: `
-- flotilla:validate off
-- A rollout is frozen at creation: its migration set AND, for every tenant, its
-- target (URL template with \${VAR} unresolved, schema) and maintenance window.
-- Workers read these, never the live registry, so a later rollout, dry run or
-- edited tenants file cannot redirect an existing rollout (promise 3).
ALTER TABLE rollout_tenants
  ADD COLUMN database_url text,
  ADD COLUMN schema text,
  ADD COLUMN maintenance_window jsonb;
-- rollouts created before this migration: their targets were the registry's
UPDATE rollout_tenants rt SET database_url = t.database_url, schema = t.schema, maintenance_window = t.maintenance_window
  FROM tenants t WHERE t.id = rt.tenant_id;
-- a rollout tenant missing from the registry had nothing to run against: it keeps an empty target
UPDATE rollout_tenants SET database_url = '' WHERE database_url IS NULL;
ALTER TABLE rollout_tenants ALTER COLUMN database_url SET NOT NULL;
`,
  },
  {
    name: '005_queue_prefix.sql',
    sql: `
-- flotilla:validate off
-- Fleets sharing one control database are kept apart by their queue prefix
-- (FLOTILLA_QUEUE_PREFIX): a rollout and a schedule record the prefix they were
-- created with, and workers reconcile, claim, dispatch and restore only their
-- own. Rows made before this migration belong to the default prefix. No default
-- afterwards: every insert says which fleet it belongs to.
ALTER TABLE rollouts ADD COLUMN queue_prefix text NOT NULL DEFAULT '{flotilla}';
ALTER TABLE rollouts ALTER COLUMN queue_prefix DROP DEFAULT;
CREATE INDEX rollouts_queue_prefix_running ON rollouts (queue_prefix) WHERE state = 'running';
-- a schedule's name is unique within its fleet (its job scheduler lives under the fleet's prefix)
ALTER TABLE schedules ADD COLUMN queue_prefix text NOT NULL DEFAULT '{flotilla}';
ALTER TABLE schedules ALTER COLUMN queue_prefix DROP DEFAULT;
ALTER TABLE schedules DROP CONSTRAINT schedules_pkey, ADD PRIMARY KEY (queue_prefix, name);
`,
  },
  {
    name: '007_risk_acks.sql',
    sql: `
-- flotilla:validate off
-- Lint findings of error level acknowledged for a rollout or a schedule
-- (--accept-risk <rule>, a file's "-- flotilla:allow <rule>" header, or an
-- earlier acknowledgement of the same file content, rule and line), and who
-- gave them: actor (FLOTILLA_ACTOR, else the OS user) and os_user (user@host).
CREATE TABLE risk_acks (
  id bigserial PRIMARY KEY,
  rollout_id text REFERENCES rollouts (id) ON DELETE CASCADE,
  schedule_name text,
  queue_prefix text NOT NULL,
  set_checksum text NOT NULL,
  file text NOT NULL,
  file_checksum text NOT NULL,
  line integer NOT NULL,
  rule text NOT NULL,
  target text,
  lock_mode text,
  -- flag | header | earlier
  via text NOT NULL,
  actor text NOT NULL,
  os_user text NOT NULL,
  -- via earlier: where it was first acknowledged
  earlier text,
  acknowledged_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((rollout_id IS NULL) <> (schedule_name IS NULL))
);
CREATE INDEX risk_acks_rollout ON risk_acks (rollout_id);
CREATE INDEX risk_acks_schedule ON risk_acks (queue_prefix, schedule_name);
CREATE INDEX risk_acks_finding ON risk_acks (file_checksum, rule, line);
`,
  },
  // 009 (ops): the notification outbox and its trigger
  NOTIFY_MIGRATION,
];
