import type { MongoClient } from 'mongodb';
import { recreateCustomRoles } from '../db/users-roles.js';
import { isUnauthorized } from '../db/mongo-errors.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';

/** --with-roles: the custom roles of the selected databases, before their data (users-roles.ts). */
export async function recreateRolesOnTarget(source: MongoClient, target: MongoClient, dbs: string[], rules: NamespaceRules, log: Logger): Promise<void> {
  try {
    const r = await recreateCustomRoles(source, target, dbs, rules);
    log.info({ created: r.created, existing: r.existing }, `custom roles on the target: ${r.created.length} created, ${r.existing.length} already there (users are not migrated)`);
  } catch (err) {
    if (err instanceof MigratorError) throw err;
    throw new MigratorError(ExitCode.PREFLIGHT_FAILED, `--with-roles: the custom roles could not be recreated on the target: ${errorMessage(err)}`, {
      hint:
        isUnauthorized(err)
          ? 'The source user needs viewRole on the selected databases, the target user createRole (role userAdmin) on the target databases; grant them, or leave out --with-roles and create the roles yourself.'
          : 'Fix the role named above on the target, or leave out --with-roles and create the roles yourself.',
      cause: err,
    });
  }
}
