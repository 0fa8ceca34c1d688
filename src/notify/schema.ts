/**
 * Control migration 009: the notification outbox. A trigger on `flotilla.rollouts` writes one
 * row per notify target whenever a rollout's state changes to halted, failed, succeeded or
 * cancelled, in the transaction that makes the change. So whoever changes the state (a worker's
 * dispatch, `rollout cancel`, the dashboard, code written later) there is exactly one event per
 * change and target, and it survives the process that made it: any worker of the fleet delivers
 * it (notify/sender.ts) and marks it sent. The payload is what a receiver needs, snapshotted at
 * the change: states, counts, halt reason, the first failed tenants (id and error code).
 * Listed in control/schema.ts.
 */
import type { MigrationFile } from '../core/migration-set.js';

export const NOTIFY_MIGRATION: MigrationFile = {
  name: '009_notifications.sql',
  sql: `
-- flotilla:validate off
CREATE TABLE notifications (
  id bigserial PRIMARY KEY,
  rollout_id text NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
  -- the state the rollout changed to: halted | failed | succeeded | cancelled
  event text NOT NULL,
  -- as given (--notify, the config file): \${VAR} placeholders stay unresolved here
  target text NOT NULL,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  -- a sender holds the row until then (a sender that died lets it go)
  claimed_until timestamptz,
  sent_at timestamptz,
  gave_up_at timestamptz,
  last_error text
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE sent_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX notifications_rollout ON notifications (rollout_id);

CREATE FUNCTION notify_rollout_state() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE snapshot jsonb;
BEGIN
  snapshot := jsonb_build_object(
    'previousState', OLD.state,
    'haltReason', NEW.halt_reason,
    'dryRun', coalesce((NEW.options->>'dryRun')::boolean, false),
    'createdAt', NEW.created_at,
    'changedAt', now(),
    'counts', (SELECT coalesce(jsonb_object_agg(state, n), '{}'::jsonb)
                 FROM (SELECT state, count(*)::int AS n FROM flotilla.rollout_tenants WHERE rollout_id = NEW.id GROUP BY state) s),
    'failedTenants', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', tenant_id, 'code', code) ORDER BY position), '[]'::jsonb)
                        FROM (SELECT tenant_id, position, coalesce(error->'pg'->>'code', error->>'code') AS code
                                FROM flotilla.rollout_tenants WHERE rollout_id = NEW.id AND state = 'failed' ORDER BY position LIMIT 10) f));
  INSERT INTO flotilla.notifications (rollout_id, event, target, payload)
  SELECT NEW.id, NEW.state, t.target, snapshot FROM jsonb_array_elements_text(NEW.options->'notify') AS t(target);
  RETURN NULL;
END
$fn$;

CREATE TRIGGER rollouts_notify AFTER UPDATE OF state ON rollouts FOR EACH ROW
  WHEN (NEW.state IS DISTINCT FROM OLD.state AND NEW.state IN ('halted', 'failed', 'succeeded', 'cancelled')
        AND jsonb_typeof(NEW.options->'notify') = 'array')
  EXECUTE FUNCTION notify_rollout_state();
`,
};
