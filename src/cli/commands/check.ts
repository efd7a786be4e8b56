import type { CommandModule } from 'yargs';
import type { MongoClient } from 'mongodb';
import { BSON } from 'mongodb';
import { requireEndpoint, type MigratorConfig } from '../../config/load.js';
import { formatCompatReport, targetCompatibility } from '../../orchestration/target-compat.js';
import { listSourceNamespaces } from '../../verify/verify-migration.js';
import { ExitCode } from '../../util/exit-codes.js';
import { MigratorError, errorMessage } from '../../util/errors.js';
import { isTransientError } from '../../db/transient-errors.js';
import type { EndpointConfig } from '../../config/schema.js';
import { connect } from '../../db/connect.js';
import { describeServer, summarizeDatabases, type DatabaseSummary, type ServerInfo } from '../../db/server-info.js';
import { formatAccessListing, listUsersAndRoles, type AccessListing } from '../../db/users-roles.js';
import type { NamespaceRules } from '../../model/namespace-filter.js';
import { redactUri } from '../../util/redact.js';
import { printJson, printReport } from '../../util/output.js';
import { commandContext } from '../context.js';
import { createTasks } from '../tasks.js';
import { Resources, namespaceRules } from '../resources.js';

interface SideReport {
  role: 'source' | 'target';
  uri: string;
  server: ServerInfo;
  databases: DatabaseSummary[];
  /** Source only: users and custom roles of the selected databases (never migrated). */
  access?: AccessListing;
}

interface Ctx {
  reports: SideReport[];
  clients: MongoClient[];
}

function formatSide(r: SideReport): string {
  const s = r.server;
  const topo = s.topology === 'replicaSet' ? `replica set ${s.replicaSetName}` : s.topology;
  const cs = s.changeStreams.usable ? 'usable' : `not usable: ${s.changeStreams.reason}`;
  const lines = [`${r.role}: ${r.uri}`, `  server: ${s.flavor} ${s.version}${s.engineVersion ? ` (engine ${s.engineVersion})` : ''}, ${topo}`, `  change streams: ${cs}`];
  if (r.databases.length === 0) lines.push('  databases: none');
  for (const db of r.databases) {
    const docs = db.collections.reduce((n, c) => n + c.documents, 0);
    lines.push(`  ${db.name}: ${db.collections.length} collections, ${docs} documents`);
    for (const c of db.collections) lines.push(`    ${c.name}: ${c.documents}`);
  }
  if (r.access) lines.push(...formatAccessListing(r.access));
  return lines.join('\n');
}

async function inspect(role: 'source' | 'target', e: EndpointConfig, timeoutMs: number, ctx: Ctx, skipDbs: Set<string>, rules: NamespaceRules) {
  const client = await connect(role, e, timeoutMs);
  ctx.clients.push(client);
  const server = await describeServer(client, e.uri);
  const databases = await summarizeDatabases(client, skipDbs);
  const report: SideReport = { role, uri: redactUri(e.uri), server, databases };
  if (role === 'source') {
    // The databases --include/--exclude select (every user database by default).
    const selected = databases.filter((d) => rules.includesDatabase(d.name) && (d.collections.length === 0 || d.collections.some((c) => rules.includes({ db: d.name, coll: c.name }))));
    report.access = await listUsersAndRoles(client, selected.map((d) => d.name));
  }
  ctx.reports.push(report);
}

/**
 * `migrator check --target-compat`: the compatibility doctor alone (target-compat.ts), the report
 * full-migrate and initial-load run in preflight. Exit 4 when the target refuses anything.
 */
async function targetCompat(config: MigratorConfig, json: boolean): Promise<void> {
  const res = new Resources();
  try {
    const sourceEndpoint = requireEndpoint(config, 'source');
    const targetEndpoint = requireEndpoint(config, 'target');
    const [source, target] = await Promise.all([res.connect('source', config, sourceEndpoint), res.connect('target', config, targetEndpoint)]);
    const [sourceInfo, targetInfo] = await Promise.all([describeServer(source, sourceEndpoint.uri), describeServer(target, targetEndpoint.uri)]);
    const rules = namespaceRules(config);
    // A source user without the read privileges gets one message naming them (exit 4), not a crash.
    const report = await (async () => {
      const namespaces = await listSourceNamespaces(source, rules, new Set([config.stateDb]));
      return targetCompatibility({ source, sourceInfo, target: targetInfo, namespaces, rules, timeSeries: config.timeSeries });
    })().catch((err: unknown) => {
      if (isTransientError(err)) throw err;
      throw new MigratorError(ExitCode.PREFLIGHT_FAILED, `The compatibility check could not read the source: ${errorMessage(err)}`, {
        hint: 'The source user needs listDatabases, listCollections, listIndexes and find on the selected databases (role read on each, or readAnyDatabase).',
        cause: err,
      });
    });
    if (json) printJson(JSON.parse(BSON.EJSON.stringify(report, { relaxed: true })));
    else printReport(formatCompatReport(report));
    if (report.items.some((i) => i.blocking)) process.exitCode = ExitCode.PREFLIGHT_FAILED;
  } finally {
    await res.close();
  }
}

/** `migrator check`: connect to source and target and print what is there. */
export const checkCommand: CommandModule<object, { json?: boolean; 'target-compat'?: boolean }> = {
  command: 'check',
  describe: 'Connect to the source and the target and report versions, topology, change streams, data, and the source users and custom roles (not migrated); --target-compat: what the target cannot hold',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'Print the report as JSON' })
      .option('target-compat', {
        type: 'boolean',
        default: false,
        describe: 'Only list what of the selection the target cannot hold (indexes, options, views, time series, field names, document sizes), with remedies; exit 4 if anything',
      }),
  handler: async (argv) => {
    const { config, log } = commandContext(argv as never);
    if (argv['target-compat']) return targetCompat(config, Boolean(argv.json));
    const source = requireEndpoint(config, 'source');
    const target = requireEndpoint(config, 'target');
    const skip = new Set([config.stateDb]);
    const rules = namespaceRules(config);
    const ctx: Ctx = { reports: [], clients: [] };
    // listr2 rejects as soon as one side fails, while the other may still be connecting: wait for
    // both before closing, or a client opened late is never closed and the process never exits.
    const inspections: Promise<void>[] = [];
    const track = (p: Promise<void>) => (inspections.push(p), p);
    try {
      await createTasks<Ctx>(
        [
          { title: 'Inspect the source', task: (c) => track(inspect('source', source, config.connectTimeoutMs, c, skip, rules)) },
          { title: 'Inspect the target', task: (c) => track(inspect('target', target, config.connectTimeoutMs, c, skip, rules)) },
        ],
        { logFormat: config.logFormat, concurrent: true },
      ).run(ctx);
    } finally {
      await Promise.allSettled(inspections);
      await Promise.all(ctx.clients.map((c) => c.close().catch(() => undefined)));
    }
    ctx.reports.sort((a, b) => (a.role === 'source' ? -1 : 1) - (b.role === 'source' ? -1 : 1));
    log.debug({ sides: ctx.reports.length }, 'check finished');
    if (argv.json) printJson({ source: ctx.reports[0], target: ctx.reports[1] });
    else printReport(ctx.reports.map(formatSide).join('\n'));
  },
};
