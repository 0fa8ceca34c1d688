/** Flotilla's library API: the engine, the validator, and the pure core. */
export {
  Migrator,
  DEFAULT_ENGINE_SETTINGS,
  type EngineSettings,
  type EngineEvent,
  type MigrateReport,
  type MigratorPorts,
  type StatusReport,
} from './migrator.js';
export { connectLockSessions, type LockConnection, type LockSessions } from './adapters/pg/lock.js';
export { MigrationValidator } from './validator.js';
export { buildMigrationSet, type Migration, type MigrationSet, type MigrationFile } from './core/migration-set.js';
export { loadMigrationDir, readMigrationFiles } from './adapters/fs-source.js';
export { diffSnapshots, DEFAULT_VALIDATION_OPTIONS, type ValidationOptions, type Snapshot, type ValidationResult } from './core/validation.js';
export { plan, type Plan, type AppliedRow } from './core/plan.js';
export * from './core/errors.js';
export { connect } from './adapters/pg/connection.js';
