/**
 * The guide's validator as a library API:
 *
 *   const validator = new MigrationValidator(client);
 *   const before = await validator.snapshotBefore(['users', 'contracts']);
 *   await client.query('ALTER TABLE users ADD COLUMN IF NOT EXISTS phone VARCHAR(20)');
 *   const after = await validator.snapshotAfter(['users', 'contracts']);
 *   const result = validator.validate(before, after, { allowRowChanges: false });
 *   // result: { valid, issues }
 *
 * Pass the client that runs the migration, so the snapshots see its uncommitted
 * changes. The engine uses the same snapshot and diff inside every apply.
 */
import { takeSnapshot } from './adapters/pg/snapshot.js';
import type { Queryable } from './adapters/pg/connection.js';
import { diffSnapshots, type Snapshot, type ValidationOptions, type ValidationResult } from './core/validation.js';

export class MigrationValidator {
  constructor(
    private readonly db: Queryable,
    private readonly options: { schemas?: string[] } = {},
  ) {
    if (!db || typeof db.query !== 'function') throw new TypeError('MigrationValidator needs a pg client (or anything with query(text, values))');
  }

  snapshotBefore(tables: string[] = []): Promise<Snapshot> {
    return this.snapshot(tables);
  }

  snapshotAfter(tables: string[] = []): Promise<Snapshot> {
    return this.snapshot(tables);
  }

  validate(before: Snapshot, after: Snapshot, options: Partial<ValidationOptions> = {}): ValidationResult {
    return diffSnapshots(before, after, options);
  }

  private snapshot(tables: string[]): Promise<Snapshot> {
    return takeSnapshot(this.db, { schemas: this.options.schemas ?? [], tables });
  }
}
