/**
 * Names every layer shares: the migrator's own state database and the databases no migration
 * copies (https://www.mongodb.com/docs/manual/reference/local-database/,
 * https://www.mongodb.com/docs/manual/reference/config-database/, and `admin`, which holds users and roles).
 */
export const SYSTEM_DATABASES: readonly string[] = ['admin', 'local', 'config'];

/** The state store's database unless `--state-db` names another; never part of a selection. */
export const DEFAULT_STATE_DB = 'migrator_state';
