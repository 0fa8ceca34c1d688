/**
 * What the dashboard asks of Flotilla: the functions behind the CLI commands (`rollouts`,
 * `rollout status|retry|cancel|resume`), so the page, the JSON API and the terminal show the
 * same facts from the same queries, plus one tenant's history. A narrow interface: the web
 * layer (app.ts) knows nothing of Postgres or Redis.
 */
import type { TenantHistory } from '../control/history.js';
import { tenantHistory } from '../control/history.js';
import { withStore, type FleetContext } from '../cli/context.js';
import { rolloutCancelCommand } from '../cli/commands/rollout-cancel.js';
import { rolloutResumeCommand, type RolloutResumeResult } from '../cli/commands/rollout-resume.js';
import { rolloutRetryCommand, type RolloutRetryResult } from '../cli/commands/rollout-retry.js';
import { rolloutStatusCommand } from '../cli/commands/rollout-status.js';
import { rolloutsListCommand, type RolloutsList } from '../cli/commands/rollouts.js';
import type { RolloutView } from '../cli/print/rollout.js';
import type { RolloutsListRequest } from '../cli/requests.js';

export interface DashboardBackend {
  /** `flotilla rollouts` */
  rollouts(req: RolloutsListRequest): Promise<RolloutsList>;
  /** `flotilla rollout status <id>`; throws RolloutNotFoundError */
  rollout(id: string): Promise<RolloutView>;
  /** one tenant's frozen target and attempts; undefined when the rollout has no such tenant */
  tenantHistory(id: string, tenantId: string): Promise<TenantHistory | undefined>;
  /** `flotilla rollout retry <id>` (the frozen set; no --wait) */
  retry(id: string): Promise<RolloutRetryResult>;
  /** `flotilla rollout cancel <id>` */
  cancel(id: string): Promise<RolloutView>;
  /** `flotilla rollout resume <id>` (no --wait) */
  resume(id: string): Promise<RolloutResumeResult>;
}

/** The CLI's command functions over one fleet context (whose `store` stays open for the dashboard's life). */
export function commandBackend(fctx: FleetContext): DashboardBackend {
  return {
    rollouts: (req) => rolloutsListCommand(fctx, req),
    rollout: (id) => rolloutStatusCommand(fctx, id),
    tenantHistory: (id, tenantId) => withStore(fctx, (store) => tenantHistory(store.pool, id, tenantId)),
    retry: (id) => rolloutRetryCommand(fctx, { id, wait: false, refresh: false }),
    cancel: (id) => rolloutCancelCommand(fctx, id),
    resume: (id) => rolloutResumeCommand(fctx, { id, wait: false }),
  };
}
