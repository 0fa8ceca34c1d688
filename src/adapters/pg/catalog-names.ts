/**
 * Flotilla's catalog queries name the system catalogs with their schema. A
 * temporary relation is looked up before pg_catalog for an unqualified name
 * (pg_temp comes first in every search_path that does not list it), and a
 * migration runs on the session those queries use: a file that makes
 * `CREATE TEMP TABLE pg_class (...)` would otherwise feed the validator an empty
 * catalog, and every later file of the run would pass it unseen.
 */
const CATALOG_RELATIONS = [
  'pg_am',
  'pg_attrdef',
  'pg_attribute',
  'pg_cast',
  'pg_class',
  'pg_collation',
  'pg_constraint',
  'pg_database',
  'pg_depend',
  'pg_description',
  'pg_enum',
  'pg_event_trigger',
  'pg_extension',
  'pg_foreign_data_wrapper',
  'pg_foreign_table',
  'pg_index',
  'pg_inherits',
  'pg_language',
  'pg_locks',
  'pg_namespace',
  'pg_opclass',
  'pg_operator',
  'pg_partitioned_table',
  'pg_policy',
  'pg_proc',
  'pg_range',
  'pg_rewrite',
  'pg_roles',
  'pg_sequence',
  'pg_settings',
  'pg_stat_activity',
  'pg_statistic_ext',
  'pg_trigger',
  'pg_type',
];
const UNQUALIFIED = new RegExp(`(?<![\\w.$"])(${CATALOG_RELATIONS.join('|')})(?![\\w$"])`, 'g');

/** `sql` with every unqualified system catalog relation (also inside '...'::regclass) prefixed with pg_catalog. */
export function catalogQualified(sql: string): string {
  return sql.replace(UNQUALIFIED, 'pg_catalog.$1');
}
