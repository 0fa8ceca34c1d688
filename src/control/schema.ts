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
    name: '006_control_plane_scale.sql',
    sql: `
-- flotilla:validate off
-- The control plane at fleet size (docs/architecture.md, "The control database
-- is the scheduler") and the lock-wait gate.
--
-- 1. Per-state counters per rollout and wave, kept by a statement trigger on
--    rollout_tenants (every writer is covered: claim, record_attempt,
--    dispatch, halt, cancel, retry; a row's wave and rollout never change). Dispatch, \`rollouts\`, progress and status
--    read them instead of counting a rollout's tenants. Striped in 16 slots
--    (the writing backend's pid mod 16) so concurrent finishers do not queue
--    on one counter row. \`released\` only grows: tenants that left the
--    dispatch window or ended (the dispatcher's re-check, control/dispatch.ts).
--    Rows of rollout_tenants are never deleted one by one (only with their rollout).
CREATE TABLE rollout_counts (
  rollout_id text NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
  wave integer NOT NULL,
  slot smallint NOT NULL,
  waiting integer NOT NULL DEFAULT 0,
  queued integer NOT NULL DEFAULT 0,
  scheduled integer NOT NULL DEFAULT 0,
  running integer NOT NULL DEFAULT 0,
  succeeded integer NOT NULL DEFAULT 0,
  failed integer NOT NULL DEFAULT 0,
  cancelled integer NOT NULL DEFAULT 0,
  lock_slow integer NOT NULL DEFAULT 0,
  released bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (rollout_id, wave, slot)
) WITH (fillfactor = 50);

-- 2. Lock waits (the lock-wait gate, --max-lock-wait): per attempt as measured by
--    the engine (engine/lock-wait.ts), per tenant the sum over its attempts of
--    the current generation; lock_slow: that sum passed the rollout's limit.
ALTER TABLE attempts ADD COLUMN lock_wait_ms integer, ADD COLUMN lock_timeouts integer;
ALTER TABLE rollout_tenants ADD COLUMN lock_wait_ms integer, ADD COLUMN lock_timeouts integer,
  ADD COLUMN lock_slow boolean NOT NULL DEFAULT false;

-- a rollout's tenants arrive in one statement: counted per statement
CREATE FUNCTION rollout_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO flotilla.rollout_counts AS c (rollout_id, wave, slot, waiting, queued, scheduled, running, succeeded, failed, cancelled, lock_slow)
  SELECT n.rollout_id, n.wave, pg_catalog.pg_backend_pid() % 16,
         count(*) FILTER (WHERE n.state = 'pending' AND n.dispatched_at IS NULL),
         count(*) FILTER (WHERE n.state = 'pending' AND n.dispatched_at IS NOT NULL),
         count(*) FILTER (WHERE n.state = 'scheduled'), count(*) FILTER (WHERE n.state = 'running'),
         count(*) FILTER (WHERE n.state = 'succeeded'), count(*) FILTER (WHERE n.state = 'failed'),
         count(*) FILTER (WHERE n.state = 'cancelled'), count(*) FILTER (WHERE n.lock_slow)
    FROM new_rows n GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (rollout_id, wave, slot) DO UPDATE SET
    waiting = c.waiting + EXCLUDED.waiting, queued = c.queued + EXCLUDED.queued, scheduled = c.scheduled + EXCLUDED.scheduled,
    running = c.running + EXCLUDED.running, succeeded = c.succeeded + EXCLUDED.succeeded, failed = c.failed + EXCLUDED.failed,
    cancelled = c.cancelled + EXCLUDED.cancelled, lock_slow = c.lock_slow + EXCLUDED.lock_slow;
  RETURN NULL;
END
$fn$;

-- updates: per row, and only for rows whose counted class changes (the trigger's WHEN is checked
-- without calling the function: a claim of a running tenant, an error or an applied list cost nothing)
CREATE FUNCTION rollout_counts_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  o_flying boolean := OLD.state = 'running' OR (OLD.state = 'pending' AND OLD.dispatched_at IS NOT NULL);
  n_flying boolean := NEW.state = 'running' OR (NEW.state = 'pending' AND NEW.dispatched_at IS NOT NULL);
  o_open boolean := OLD.state IN ('pending', 'scheduled', 'running');
  n_open boolean := NEW.state IN ('pending', 'scheduled', 'running');
BEGIN
  INSERT INTO flotilla.rollout_counts AS c (rollout_id, wave, slot, waiting, queued, scheduled, running, succeeded, failed, cancelled, lock_slow, released)
  VALUES (NEW.rollout_id, NEW.wave, pg_catalog.pg_backend_pid() % 16,
          (NEW.state = 'pending' AND NEW.dispatched_at IS NULL)::int - (OLD.state = 'pending' AND OLD.dispatched_at IS NULL)::int,
          (NEW.state = 'pending' AND NEW.dispatched_at IS NOT NULL)::int - (OLD.state = 'pending' AND OLD.dispatched_at IS NOT NULL)::int,
          (NEW.state = 'scheduled')::int - (OLD.state = 'scheduled')::int,
          (NEW.state = 'running')::int - (OLD.state = 'running')::int,
          (NEW.state = 'succeeded')::int - (OLD.state = 'succeeded')::int,
          (NEW.state = 'failed')::int - (OLD.state = 'failed')::int,
          (NEW.state = 'cancelled')::int - (OLD.state = 'cancelled')::int,
          NEW.lock_slow::int - OLD.lock_slow::int,
          -- left the window (running or handed out -> anything else) or ended (open -> closed)
          ((o_flying AND NOT n_flying) OR (o_open AND NOT n_open))::int)
  ON CONFLICT (rollout_id, wave, slot) DO UPDATE SET
    waiting = c.waiting + EXCLUDED.waiting, queued = c.queued + EXCLUDED.queued, scheduled = c.scheduled + EXCLUDED.scheduled,
    running = c.running + EXCLUDED.running, succeeded = c.succeeded + EXCLUDED.succeeded, failed = c.failed + EXCLUDED.failed,
    cancelled = c.cancelled + EXCLUDED.cancelled, lock_slow = c.lock_slow + EXCLUDED.lock_slow, released = c.released + EXCLUDED.released;
  RETURN NULL;
END
$fn$;

-- the triggers first: they lock rollout_tenants against writers until this commits, so the backfill below misses nothing
CREATE TRIGGER rollout_counts_insert AFTER INSERT ON rollout_tenants
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rollout_counts_insert();
CREATE TRIGGER rollout_counts_update AFTER UPDATE ON rollout_tenants FOR EACH ROW
  WHEN (OLD.state IS DISTINCT FROM NEW.state OR (OLD.dispatched_at IS NULL) IS DISTINCT FROM (NEW.dispatched_at IS NULL)
        OR OLD.lock_slow IS DISTINCT FROM NEW.lock_slow)
  EXECUTE FUNCTION rollout_counts_update();

-- rollouts created before this migration: their counters, from their tenants
INSERT INTO rollout_counts (rollout_id, wave, slot, waiting, queued, scheduled, running, succeeded, failed, cancelled)
SELECT rollout_id, wave, 0,
       count(*) FILTER (WHERE state = 'pending' AND dispatched_at IS NULL), count(*) FILTER (WHERE state = 'pending' AND dispatched_at IS NOT NULL),
       count(*) FILTER (WHERE state = 'scheduled'), count(*) FILTER (WHERE state = 'running'), count(*) FILTER (WHERE state = 'succeeded'),
       count(*) FILTER (WHERE state = 'failed'), count(*) FILTER (WHERE state = 'cancelled')
  FROM rollout_tenants GROUP BY rollout_id, wave;

-- the next candidates of a wave, in order, without sorting the wave
CREATE INDEX rollout_tenants_candidates ON rollout_tenants (rollout_id, wave, position) WHERE state = 'pending' AND dispatched_at IS NULL;
-- handed out and not finished: --per-server and \`rollout resume\` read only these
CREATE INDEX rollout_tenants_in_flight ON rollout_tenants (rollout_id, server)
  WHERE state = 'running' OR state = 'scheduled' OR (state = 'pending' AND dispatched_at IS NOT NULL);
-- a page of \`rollout status\`
CREATE INDEX rollout_tenants_position ON rollout_tenants (rollout_id, position);
-- \`rollouts\`: the newest first
CREATE INDEX rollouts_created ON rollouts (created_at DESC, id DESC);

-- 3. Recording an attempt no longer locks the rollout row (every finished tenant
--    queued on it). The counters come back as a hint for the caller's "dispatch
--    or not" (core/dispatch.ts windowStillFull); once nothing is left to hand
--    out, finishers take a short lock of their own (the rollout's tail) so the
--    last one sees that nothing runs any more and finishes the rollout.
ALTER TABLE rollouts DROP COLUMN in_flight, DROP COLUMN waiting;
DROP FUNCTION record_attempt(text, text, integer, integer, text, text, text[], jsonb, jsonb, text, timestamptz, integer);
CREATE FUNCTION record_attempt(
  p_rollout text, p_tenant text, p_generation integer, p_attempt integer, p_kind text, p_state text,
  p_applied text[], p_error jsonb, p_checks jsonb, p_worker text, p_started timestamptz, p_duration integer,
  p_lock_wait integer, p_lock_timeouts integer,
  OUT rollout_state text, OUT options jsonb, OUT in_flight integer, OUT waiting integer, OUT finished boolean)
LANGUAGE plpgsql AS $fn$
DECLARE n integer := 0; wait_total integer; timeouts_total integer;
BEGIN
  INSERT INTO flotilla.attempts (rollout_id, tenant_id, generation, attempt, kind, state, applied, error, worker, started_at, duration_ms, lock_wait_ms, lock_timeouts)
  VALUES (p_rollout, p_tenant, p_generation, p_attempt, p_kind, p_state, p_applied, p_error, p_worker, p_started, p_duration, p_lock_wait, p_lock_timeouts)
  ON CONFLICT (rollout_id, tenant_id, generation, kind, attempt) DO UPDATE
    SET state = EXCLUDED.state, applied = EXCLUDED.applied, error = EXCLUDED.error, finished_at = now(), duration_ms = EXCLUDED.duration_ms,
        lock_wait_ms = EXCLUDED.lock_wait_ms, lock_timeouts = EXCLUDED.lock_timeouts;
  SELECT r.state, r.options INTO rollout_state, options FROM flotilla.rollouts r WHERE r.id = p_rollout;
  IF p_attempt > 1 THEN
    SELECT sum(a.lock_wait_ms)::int, sum(a.lock_timeouts)::int INTO wait_total, timeouts_total
      FROM flotilla.attempts a WHERE a.rollout_id = p_rollout AND a.tenant_id = p_tenant AND a.generation = p_generation AND a.kind = p_kind;
  ELSE
    -- the generation's first attempt: its own figures are the sums
    wait_total := p_lock_wait;
    timeouts_total := p_lock_timeouts;
  END IF;
  IF p_state IN ('succeeded', 'failed') THEN
    UPDATE flotilla.rollout_tenants t
       SET state = p_state, applied = CASE WHEN p_kind = 'validate' THEN t.applied ELSE p_applied END, error = p_error,
           checks = coalesce(p_checks, t.checks), finished_at = now(),
           duration_ms = (extract(epoch FROM now() - coalesce(t.started_at, now())) * 1000)::int,
           lock_wait_ms = wait_total, lock_timeouts = timeouts_total,
           lock_slow = coalesce(wait_total > (options->>'maxLockWaitMs')::numeric, false)
     WHERE t.rollout_id = p_rollout AND t.tenant_id = p_tenant AND t.generation = p_generation AND t.state IN ('running', 'pending', 'scheduled');
    GET DIAGNOSTICS n = ROW_COUNT;
  ELSE
    UPDATE flotilla.rollout_tenants t SET error = p_error, lock_wait_ms = wait_total, lock_timeouts = timeouts_total
     WHERE t.rollout_id = p_rollout AND t.tenant_id = p_tenant AND t.generation = p_generation;
  END IF;
  SELECT coalesce(sum(c.queued + c.running), 0)::int, coalesce(sum(c.waiting), 0)::int INTO in_flight, waiting
    FROM flotilla.rollout_counts c WHERE c.rollout_id = p_rollout;
  IF n > 0 AND waiting = 0 THEN
    -- the tail: finishers one after the other, each seeing the ones before it committed
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('flotilla.tail/' || p_rollout, 0));
    SELECT coalesce(sum(c.queued + c.running), 0)::int, coalesce(sum(c.waiting), 0)::int INTO in_flight, waiting
      FROM flotilla.rollout_counts c WHERE c.rollout_id = p_rollout;
  END IF;
  finished := n > 0;
END
$fn$;

-- 4. What dispatch reads, under the rollout's dispatch lock, taken without waiting
--    (control/dispatch.ts): not obtained, another process is dispatching and
--    will look again once it committed. A VOLATILE function: the reads after the
--    lock see everything committed before it was obtained.
CREATE FUNCTION dispatch_read(p_rollout text, p_prefix text, p_wait boolean,
  OUT locked boolean, OUT state text, OUT current_wave integer, OUT wave_count integer, OUT finished boolean, OUT options jsonb,
  OUT waves jsonb, OUT released bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
  IF p_wait THEN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('flotilla.dispatch/' || p_rollout, 0));
    locked := true;
  ELSE
    locked := pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtextextended('flotilla.dispatch/' || p_rollout, 0));
  END IF;
  IF NOT locked THEN RETURN; END IF;
  SELECT r.state, r.current_wave, r.wave_count, r.finished_at IS NOT NULL, r.options INTO state, current_wave, wave_count, finished, options
    FROM flotilla.rollouts r WHERE r.id = p_rollout AND r.queue_prefix = p_prefix;
  -- not found (or another fleet's): state stays null
  IF NOT FOUND THEN RETURN; END IF;
  SELECT coalesce(jsonb_agg(w ORDER BY w.wave), '[]'), coalesce(sum(w.released), 0) INTO waves, released FROM (
    SELECT c.wave, sum(c.waiting)::int AS waiting, sum(c.queued)::int AS queued, sum(c.scheduled)::int AS scheduled, sum(c.running)::int AS running,
           sum(c.succeeded)::int AS succeeded, sum(c.failed)::int AS failed, sum(c.cancelled)::int AS cancelled, sum(c.lock_slow)::int AS lock_slow,
           sum(c.released)::bigint AS released
      FROM flotilla.rollout_counts c WHERE c.rollout_id = p_rollout GROUP BY c.wave) w;
END
$fn$;
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
