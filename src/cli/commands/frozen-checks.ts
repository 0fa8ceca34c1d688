/**
 * What `rollout retry` and `rollout resume` tell the user before they run a
 * rollout's frozen targets and set again: which tenants the registry now
 * points elsewhere, and whether the files on disk differ from the frozen set
 * (then `retry --refresh` re-freezes them, when no tenant ran the old ones).
 * The decisions are in core/frozen.ts; this module reads and prints.
 */
import { loadMigrationDir } from '../../adapters/fs-source.js';
import { ConfigError, MigrationsDirError, RefreshRefusedError } from '../../core/errors.js';
import {
  describeSetDiff,
  diffSets,
  filesReplacedBy,
  isSameSet,
  refreshBlockers,
  setDiffNotice,
  targetChanges,
  targetNotices,
  type Target,
} from '../../core/frozen.js';
import type { MigrationSet } from '../../core/migration-set.js';
import type { ControlStore, RefreshRequest, RolloutRow } from '../../control/store.js';

/** One line per tenant whose registry entry moved away from the rollout's frozen target. */
export async function targetChangeNotices(store: ControlStore, rolloutId: string): Promise<string[]> {
  const rows = await store.frozenTargets(rolloutId);
  const registry = new Map<string, Target>();
  for (const r of rows) if (r.registry) registry.set(r.tenantId, r.registry);
  return targetNotices(
    targetChanges(
      rows.map((r) => ({ tenantId: r.tenantId, ...r.frozen })),
      registry,
    ),
  );
}

export interface RetryPreparation {
  notices: string[];
  /** set when --refresh found other files on disk: handed to store.retry */
  refresh?: RefreshRequest;
}

/**
 * Compare the files in `dir` with the rollout's frozen set. Without --refresh
 * a difference is a notice (the retry runs the frozen set, as promised); a
 * directory that cannot be read is not an error then. With --refresh the
 * directory must load, and store.retry swaps the new set in (or refuses).
 */
export async function prepareRetry(store: ControlStore, rollout: RolloutRow, dir: string, refresh: boolean): Promise<RetryPreparation> {
  const notices = await targetChangeNotices(store, rollout.id);
  // a revert rollout's set is down files (cli/commands/rollout-revert.ts): the files on disk are no refresh of it
  if (rollout.options.revert) {
    if (refresh)
      throw new ConfigError([
        `--refresh: rollout ${rollout.id} reverts ${rollout.options.revert.of} with the down files it froze; to run other down files, retry without --refresh and start a new \`flotilla rollout revert ${rollout.options.revert.of}\` once it is done`,
      ]);
    return { notices };
  }
  let disk: MigrationSet;
  try {
    disk = await loadMigrationDir(dir);
  } catch (e) {
    if (refresh) throw e;
    if (!(e instanceof MigrationsDirError))
      notices.push(`could not compare the migration files in ${dir} with the frozen set: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
    return { notices };
  }
  const frozen = await store.loadMigrationSet(rollout.setChecksum);
  const diff = diffSets(frozen, disk);
  if (isSameSet(diff)) {
    if (refresh) notices.push(`--refresh: the files in ${dir} are the frozen set of rollout ${rollout.id}; nothing to refresh`);
    return { notices };
  }
  if (!refresh) return { notices: [...notices, setDiffNotice(rollout.id, diff)] };
  const replaced = filesReplacedBy(frozen, diff);
  notices.push(`--refresh: rollout ${rollout.id} now runs the files in ${dir} (${describeSetDiff(diff)})`);
  return {
    notices,
    refresh: {
      set: disk,
      check: (current) => {
        if (current.setChecksum !== rollout.setChecksum)
          throw new ConfigError([`--refresh: the set of rollout ${rollout.id} changed while this command ran; run it again`]);
        const running = current.tenants.filter((t) => t.state === 'running').map((t) => t.tenantId);
        if (current.state === 'running' || running.length) {
          throw new ConfigError([
            `--refresh: rollout ${rollout.id} is still running${running.length ? ` (${running.slice(0, 5).join(', ')}${running.length > 5 ? ', ...' : ''})` : ''}; its set can only change once nothing runs. Wait for it to finish (or \`flotilla rollout cancel ${rollout.id}\`), then retry with --refresh.`,
          ]);
        }
        const blockers = refreshBlockers(replaced, diff.added, current.tenants);
        if (blockers.length) throw new RefreshRefusedError(rollout.id, blockers);
      },
    },
  };
}
