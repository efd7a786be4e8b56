import type { CommandModule } from 'yargs';
import { BSON, type MongoClient } from 'mongodb';
import { requireEndpoint } from '../../config/load.js';
import { verifyMigration, type HeldTtlIndex, type VerificationReport } from '../../verify/verify-migration.js';
import { StateStore } from '../../state/store.js';
import { errorMessage } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import type { MigratorConfig } from '../../config/schema.js';
import { SCHEMA_KINDS, type SchemaKind } from '../../db/compare-schema.js';
import { ExitCode } from '../../util/exit-codes.js';
import { printJson, printReport } from '../../util/output.js';
import { commandContext } from '../context.js';
import { Resources, namespaceRules } from '../resources.js';

const idText = (id: unknown) => BSON.EJSON.stringify({ _id: id }, { relaxed: true }).slice('{"_id":'.length, -1);

export function formatVerification(r: VerificationReport): string {
  const lines: string[] = [];
  for (const n of r.namespaces) {
    if (n.loadOnly) {
      lines.push(`load-only ${n.source} → ${n.target}  source ${n.sourceCount}, target ${n.targetCount} (time series: copied once, not kept in sync, not compared)`);
      continue;
    }
    const status = n.match ? 'ok      ' : 'MISMATCH';
    lines.push(`${status} ${n.source || '(none)'} → ${n.target}  source ${n.sourceCount}, target ${n.targetCount}`);
    if (n.missingCount) lines.push(`  missing on target: ${n.missingCount} (first: ${n.missing.map(idText).join(', ')})`);
    if (n.extraCount) lines.push(`  extra on target: ${n.extraCount}${n.extra.length ? ` (first: ${n.extra.map(idText).join(', ')})` : ''}`);
    if (n.differentCount) lines.push(`  different: ${n.differentCount} (first: ${n.different.map(idText).join(', ')})`);
    if (n.ttlExpiredCount) lines.push(`  expired by the source's TTL during the comparison (not a difference): ${n.ttlExpiredCount} (first: ${n.ttlExpired.map(idText).join(', ')})`);
  }
  const counted = r.schema.differences.filter((d) => !d.ignored).length;
  const ignored = r.schema.differences.length - counted;
  if (r.schema.differences.length) lines.push(`schema: ${counted} difference(s)${ignored ? `, ${ignored} ignored (--ignore-schema ${r.schema.ignored.join(',')})` : ''}`);
  for (const d of r.schema.differences) lines.push(`  ${d.ignored ? 'ignored ' : 'MISMATCH'} ${d.kind} ${d.source || '(none)'} → ${d.target}: ${d.detail}`);
  lines.push(
    r.match
      ? `verified: ${r.namespaces.length} collections match${r.schema.differences.length ? '' : ', indexes, options and views included'}`
      : `verification FAILED: source and target differ${r.documentsMatch ? ' (schema)' : ''}`,
  );
  return lines.join('\n');
}

/** `migrator verify`: document-by-document comparison of every migrated collection. */
export const verifyCommand: CommandModule<object, { json?: boolean; 'max-ids'?: number; 'ignore-schema'?: string[] }> = {
  command: 'verify',
  describe: 'Compare source and target document by document (canonical BSON, _id order) and their indexes, collection options and views; exit 7 on a mismatch',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'Print the report as JSON' })
      .option('max-ids', { type: 'number', default: 10, describe: 'How many differing _ids to list per collection' })
      .option('ignore-schema', ignoreSchemaOption),
  handler: async (argv) => {
    const { config, log } = commandContext(argv as never);
    const res = new Resources();
    try {
      const source = await res.connect('source', config, requireEndpoint(config, 'source'));
      const target = await res.connect('target', config, requireEndpoint(config, 'target'));
      const report = await verifyMigration(source, target, namespaceRules(config), {
        skipDbs: new Set([config.stateDb]),
        maxIds: argv['max-ids'],
        ignoreSchema: ignoredKinds(argv['ignore-schema'] ?? []),
        ttlHolds: await heldTtlIndexes(res, config, target, log),
        timeSeriesLoadOnly: config.timeSeries === 'load-only',
        onNamespace: (ns) => log.info({ ns }, 'verifying'),
      });
      if (argv.json) printJson(JSON.parse(BSON.EJSON.stringify(report, { relaxed: true })));
      else printReport(formatVerification(report));
      if (!report.match) process.exitCode = ExitCode.VERIFICATION_MISMATCH;
    } finally {
      await res.close();
    }
  },
};

/**
 * The TTL indexes the migration (--migration-id) holds on the target during the sync, from the state
 * store: verify compares them at their recorded original expireAfterSeconds. Read-only and best
 * effort — no store, no migration or an unreachable store means no holds (held indexes then show
 * as differences).
 */
async function heldTtlIndexes(res: Resources, config: MigratorConfig, target: MongoClient, log: Logger): Promise<HeldTtlIndex[]> {
  try {
    const client = config.state ? await res.connect('state store', config) : target;
    const store = new StateStore({ client, dbName: config.stateDb, retry: { retryForMs: 0 } });
    return (await store.listTtlHolds(config.migrationId)).filter((h) => !h.restoredAt);
  } catch (err) {
    log.debug({ err: errorMessage(err) }, 'no TTL holds read from the state store');
    return [];
  }
}

/** `--ignore-schema`, shared by verify and full-migrate (whose cutover verification it relaxes). */
export const ignoreSchemaOption = {
  type: 'string',
  array: true,
  choices: [...SCHEMA_KINDS, 'all'],
  describe: 'Schema differences to list without failing: indexes, options, views or all (repeatable or comma-separated)',
  coerce: (v: string[]) => v.flatMap((x) => String(x).split(',')).map((x) => x.trim()).filter(Boolean),
} as const;

export function ignoredKinds(list: string[]): SchemaKind[] {
  return list.includes('all') ? [...SCHEMA_KINDS] : SCHEMA_KINDS.filter((k) => list.includes(k));
}
