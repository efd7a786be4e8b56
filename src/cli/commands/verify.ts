import type { CommandModule } from 'yargs';
import { BSON } from 'mongodb';
import { requireEndpoint } from '../../config/load.js';
import { verifyMigration, type VerificationReport } from '../../verify/verify-migration.js';
import { ExitCode } from '../../util/exit-codes.js';
import { printJson, printReport } from '../../util/output.js';
import { commandContext } from '../context.js';
import { Resources, namespaceRules } from '../resources.js';

const idText = (id: unknown) => BSON.EJSON.stringify({ _id: id }, { relaxed: true }).slice('{"_id":'.length, -1);

export function formatVerification(r: VerificationReport): string {
  const lines: string[] = [];
  for (const n of r.namespaces) {
    const status = n.match ? 'ok      ' : 'MISMATCH';
    lines.push(`${status} ${n.source || '(none)'} → ${n.target}  source ${n.sourceCount}, target ${n.targetCount}`);
    if (n.missingCount) lines.push(`  missing on target: ${n.missingCount} (first: ${n.missing.map(idText).join(', ')})`);
    if (n.extraCount) lines.push(`  extra on target: ${n.extraCount}${n.extra.length ? ` (first: ${n.extra.map(idText).join(', ')})` : ''}`);
    if (n.differentCount) lines.push(`  different: ${n.differentCount} (first: ${n.different.map(idText).join(', ')})`);
  }
  lines.push(r.match ? `verified: ${r.namespaces.length} collections match` : 'verification FAILED: source and target differ');
  return lines.join('\n');
}

/** `migrator verify`: document-by-document comparison of every migrated collection. */
export const verifyCommand: CommandModule<object, { json?: boolean; 'max-ids'?: number }> = {
  command: 'verify',
  describe: 'Compare source and target document by document (canonical BSON, _id order); exit 7 on a mismatch',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'Print the report as JSON' })
      .option('max-ids', { type: 'number', default: 10, describe: 'How many differing _ids to list per collection' }),
  handler: async (argv) => {
    const { config, log } = commandContext(argv as never);
    const res = new Resources();
    try {
      const source = await res.connect('source', config, requireEndpoint(config, 'source'));
      const target = await res.connect('target', config, requireEndpoint(config, 'target'));
      const report = await verifyMigration(source, target, namespaceRules(config), {
        skipDbs: new Set([config.stateDb]),
        maxIds: argv['max-ids'],
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
