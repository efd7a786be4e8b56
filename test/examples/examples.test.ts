/**
 * Keeps examples/ true (issue 14): every `migrator` command line in the Compose file, the Kubernetes
 * manifests, the ECS task definitions and the GitHub Actions workflow is parsed by the CLI's own
 * parser (src/cli/run.ts parseOnly: the same options, MIGRATOR_* environment and strictness as a
 * run), every MIGRATOR_* variable they name is an option of some command, and each file has the
 * shape its tool needs. The Compose topology itself runs in compose-topology.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseOnly } from '../../src/cli/run.js';
import { commands } from '../../src/cli/commands/index.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { PROJECT_ROOT } from '../support/cli.js';
import {
  COMPOSE_DIR,
  EXAMPLES,
  composeEnv,
  githubExpr,
  imageUser,
  listFiles,
  loadCompose,
  loadEcsTasks,
  loadKubernetes,
  loadWorkflow,
  migratorCommandsIn,
  readDotEnv,
  rel,
  shellWords,
  type Any,
  type CommandLine,
} from './example-files.js';

const COMMAND_NAMES = commands.map((c) => String(c.command).split(' ')[0]!);
/** The uid of the image's user `node` in the official Node.js images (Dockerfile: USER node). */
const NODE_UID = 1000;
const DOTENV = readDotEnv(join(COMPOSE_DIR, '.env.example'));
const compose = loadCompose(DOTENV);
const k8s = loadKubernetes();
const ecs = loadEcsTasks();
const workflow = loadWorkflow();

/** A MIGRATOR_* variable is fine when at least one command takes it (one environment serves all). */
const known = new Map<string, boolean>();
function optionOfSomeCommand(name: string, value: string): boolean {
  if (name === 'MIGRATOR_CONFIG') return true;
  if (!known.has(name)) known.set(name, takenBySomeCommand(name, value));
  return known.get(name)!;
}
function takenBySomeCommand(name: string, value: string): boolean {
  return COMMAND_NAMES.some((cmd) => {
    try {
      return !parseOnly([cmd], { [name]: value }).unknownEnv.includes(name);
    } catch {
      return true; // taken by this command, which judged its value: the example's own parse reports that
    }
  });
}

function composeLines(): CommandLine[] {
  return Object.entries(compose.services)
    .filter(([, s]) => typeof s.image === 'string' && s.image === (DOTENV.IMAGE ?? 'migrator:latest'))
    .map(([name, s]) => ({
      where: `compose service ${name}`,
      argv: s.command as string[],
      env: composeEnv(s),
      // Its healthcheck fetches /healthz: the command itself must take the metrics settings.
      ownEnv: s.healthcheck?.disable ? [] : ['MIGRATOR_METRICS_PORT', 'MIGRATOR_METRICS_HOST'],
    }));
}

function k8sLines(): CommandLine[] {
  const byKindName = (kind: string, name: string) => k8s.find((x) => x.doc.kind === kind && x.doc.metadata?.name === name)?.doc;
  const out: CommandLine[] = [];
  for (const { file, doc } of k8s) {
    const pod = doc.spec?.template?.spec;
    for (const c of pod?.containers ?? []) {
      const env: Record<string, string> = {};
      for (const ref of c.envFrom ?? []) {
        const src = ref.secretRef ? byKindName('Secret', ref.secretRef.name) : byKindName('ConfigMap', ref.configMapRef.name);
        assert.ok(src, `${file}: envFrom names ${JSON.stringify(ref)}, which no manifest defines`);
        Object.assign(env, src.stringData ?? src.data ?? {});
      }
      for (const e of c.env ?? []) env[e.name] = String(e.value ?? 'from-a-reference');
      out.push({ where: `${file} (${doc.kind} ${doc.metadata.name})`, argv: c.args ?? c.command ?? [], env });
    }
  }
  return out;
}

function ecsLines(): CommandLine[] {
  return ecs.flatMap(({ file, task }) =>
    (task.containerDefinitions as Any[]).map((c) => ({
      where: `ecs/${file}`,
      argv: c.command as string[],
      env: Object.fromEntries([
        ...(c.environment ?? []).map((e: Any) => [e.name, e.value]),
        ...(c.secrets ?? []).map((e: Any) => [e.name, 'mongodb://user:secret@from-secrets-manager:27017']),
      ]),
    })),
  );
}

function workflowLines(): CommandLine[] {
  const inputs = workflow.on.workflow_dispatch.inputs as Record<string, { default?: unknown }>;
  const out: CommandLine[] = [];
  for (const [jobName, job] of Object.entries(workflow.jobs as Record<string, Any>)) {
    for (const step of job.steps as Any[]) {
      if (typeof step.run !== 'string') continue;
      const env = Object.fromEntries(
        Object.entries({ ...workflow.env, ...job.env, ...step.env }).map(([k, v]) => [k, githubExpr(String(v), inputs)]),
      ) as Record<string, string>;
      for (const text of migratorCommandsIn(step.run)) {
        out.push({ where: `workflow job ${jobName}, step "${step.name}"`, argv: shellWords(text, env), env });
      }
    }
  }
  return out;
}

const LINES: Record<string, CommandLine[]> = {
  compose: composeLines(),
  kubernetes: k8sLines(),
  ecs: ecsLines(),
  'github-actions': workflowLines(),
};

describe('examples: every migrator command line parses with the CLI parser', () => {
  test('each kind of example has migrator command lines', () => {
    for (const [kind, lines] of Object.entries(LINES)) assert.ok(lines.length > 0, `no migrator command line found in ${kind}`);
    assert.deepEqual(LINES.compose!.map((l) => l.argv[0]).sort(), ['apply', 'capture', 'cutover', 'full-migrate']);
    const wf = LINES['github-actions']!.map((l) => l.argv.join(' '));
    assert.ok(wf.some((l) => l === 'status --json'), `the workflow polls migrator status --json: ${wf.join(' | ')}`);
    assert.ok(wf.some((l) => /^cutover .*--wait --timeout \S+/.test(l)), `the workflow runs migrator cutover --wait --timeout: ${wf.join(' | ')}`);
  });

  for (const [kind, lines] of Object.entries(LINES)) {
    for (const line of lines) {
      test(`${kind}: ${line.where}: migrator ${line.argv.join(' ')}`, () => {
        let unknownEnv: string[];
        try {
          ({ unknownEnv } = parseOnly(line.argv, line.env));
        } catch (err) {
          // yargs names each unknown flag ("Unknown arguments: metrics-port, metricsPort").
          assert.fail(`${line.where}: \`migrator ${line.argv.join(' ')}\` does not parse: ${err instanceof Error ? err.message : String(err)}`);
        }
        const notTaken = (line.ownEnv ?? []).filter((k) => unknownEnv.includes(k));
        assert.deepEqual(notTaken, [], `${line.where}: \`migrator ${line.argv[0]}\` does not take ${notTaken.join(', ')}, which its healthcheck needs`);
        const noCommandTakes = unknownEnv.filter((k) => !optionOfSomeCommand(k, line.env[k]!));
        assert.deepEqual(noCommandTakes, [], `${line.where}: environment variables that no migrator command takes: ${noCommandTakes.join(', ')}`);
      });
    }
  }

  test('every MIGRATOR_* variable named anywhere in examples/ is an option of some command', () => {
    const unknown = new Map<string, string[]>();
    for (const file of listFiles()) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\bMIGRATOR_[A-Z0-9_]*[A-Z0-9]\b/g)) {
        if (!optionOfSomeCommand(m[0], 'x')) unknown.set(m[0], [...(unknown.get(m[0]) ?? []), rel(file)]);
      }
    }
    assert.deepEqual(Object.fromEntries(unknown), {}, 'MIGRATOR_* variables that are no option of any command (name: files)');
  });
});

/** The port of `--metrics-port N` or MIGRATOR_METRICS_PORT. */
function metricsPort(argv: string[], env: Record<string, string>): number {
  const i = argv.indexOf('--metrics-port');
  return Number(i >= 0 ? argv[i + 1] : env.MIGRATOR_METRICS_PORT);
}

/** A healthcheck command that fetches /healthz on the metrics port. */
function assertHealthz(where: string, cmd: string[], port: number) {
  assert.equal(cmd[0], 'CMD', `${where}: exec form (the image has no shell tools to rely on)`);
  assert.equal(cmd[1], 'node', `${where}: the image has node, not curl or wget`);
  assert.match(cmd.slice(2).join(' '), new RegExp(`http://127\\.0\\.0\\.1:${port}/healthz`), `${where}: liveness is /healthz on the metrics port ${port}`);
}

describe('examples: files have the shape their tools need', () => {
  test('Compose: the three-container topology, healthchecks, restart policies, /data volumes', () => {
    const s = compose.services;
    for (const name of ['full-migrate', 'apply', 'capture']) {
      const svc = s[name];
      assert.ok(svc, `service ${name}`);
      assert.equal(svc.profiles, undefined, `${name} runs without a profile`);
      assert.equal(typeof svc.image, 'string');
      assert.equal(svc.command[0], name);
      assert.equal(svc.read_only, true, `${name}: read-only root filesystem`);
      assert.ok((svc.volumes as string[]).some((v) => v.endsWith(':/data')), `${name}: a volume on /data`);
      assertHealthz(`${name} healthcheck`, svc.healthcheck.test, metricsPort(svc.command, composeEnv(svc)));
      assert.equal(composeEnv(svc).MIGRATOR_METRICS_HOST, '0.0.0.0', `${name}: metrics on every interface of the container`);
      const dep = svc.depends_on?.['local-stack'];
      assert.equal(dep?.required, false, `${name}: depends on the local stack only when the profile is on`);
    }
    // full-migrate, apply and capture exit 0 once COMPLETED: a policy that restarts them then would
    // start them again and again; failures are restarted.
    for (const name of ['full-migrate', 'apply', 'capture']) assert.equal(s[name].restart, 'on-failure', `${name}: restart on-failure`);
    for (const name of ['local-stack', 'demo-writes']) assert.deepEqual(s[name]?.profiles, ['local'], `${name} is in the local profile`);
    assert.deepEqual(s.cutover?.profiles, ['tools'], 'the cutover is run by hand (docker compose run --rm cutover)');
    assert.equal(s.cutover.restart, 'no');
    for (const [name, svc] of Object.entries(s)) {
      for (const dep of Object.keys(svc.depends_on ?? {})) assert.ok(s[dep], `${name} depends on ${dep}, which exists`);
      for (const v of (svc.volumes ?? []) as string[]) {
        const volume = v.split(':')[0]!;
        assert.ok(compose.volumes && volume in compose.volumes, `${name}: volume ${volume} is declared`);
      }
    }
    // The local profile's URIs name the stack's service and its forwarded ports.
    assert.match(DOTENV.MIGRATOR_SOURCE_URI!, /^mongodb:\/\/local-stack:27017\/\?directConnection=true$/);
    assert.match(DOTENV.MIGRATOR_TARGET_URI!, /^mongodb:\/\/local-stack:27018\/\?directConnection=true$/);
    assert.equal(DOTENV.MIGRATOR_KINESIS_ENDPOINT, 'http://local-stack:4567');
  });

  test('Kubernetes: Job, Deployment, Secret, ServiceMonitor with security context, probes and /data', () => {
    const kinds = k8s.map((x) => x.doc.kind);
    for (const k of ['Job', 'Deployment', 'Secret', 'ConfigMap', 'Service', 'ServiceMonitor', 'ServiceAccount']) assert.ok(kinds.includes(k), `a ${k}`);
    assert.equal(imageUser(), 'node', `the image's user is node (uid ${NODE_UID})`);
    const sa = k8s.find((x) => x.doc.kind === 'ServiceAccount')!.doc;
    assert.match(sa.metadata.annotations['eks.amazonaws.com/role-arn'], /^arn:aws:iam::\d{12}:role\//, 'IRSA annotation');
    const workloads = k8s.filter((x) => ['Job', 'Deployment'].includes(x.doc.kind));
    for (const { file, doc } of workloads) {
      const pod = doc.spec.template.spec;
      const labels = doc.spec.template.metadata.labels;
      assert.equal(pod.serviceAccountName, sa.metadata.name, `${file}: runs as the ServiceAccount`);
      assert.equal(pod.securityContext.runAsNonRoot, true, `${file}: runAsNonRoot`);
      assert.equal(pod.securityContext.runAsUser, NODE_UID, `${file}: runAsUser is the image's uid (runAsNonRoot cannot check a user name)`);
      assert.equal(pod.securityContext.fsGroup, NODE_UID, `${file}: fsGroup (volumes and the IRSA token readable)`);
      for (const c of pod.containers) {
        assert.equal(c.image, 'migrator', `${file}: the image kustomization.yaml replaces`);
        assert.equal(c.securityContext.readOnlyRootFilesystem, true, `${file}: readOnlyRootFilesystem`);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false, `${file}: allowPrivilegeEscalation false`);
        const mount = c.volumeMounts.find((m: Any) => m.mountPath === '/data');
        assert.ok(mount, `${file}: /data mounted`);
        assert.ok(pod.volumes.some((v: Any) => v.name === mount.name && (v.emptyDir || v.persistentVolumeClaim)), `${file}: the /data volume is defined`);
        const port = c.ports.find((p: Any) => p.name === 'metrics')?.containerPort;
        assert.equal(port, metricsPort(c.args, {}), `${file}: the metrics containerPort is --metrics-port`);
        assert.equal(c.livenessProbe.httpGet.path, '/healthz');
        assert.equal(c.readinessProbe.httpGet.path, '/readyz');
        for (const probe of [c.livenessProbe, c.readinessProbe]) assert.ok(probe.httpGet.port === 'metrics' || probe.httpGet.port === port);
      }
      if (doc.kind === 'Deployment') {
        for (const [k, v] of Object.entries(doc.spec.selector.matchLabels)) assert.equal(labels[k], v, `${file}: the selector matches the pods`);
      }
      if (doc.kind === 'Job') {
        assert.ok(['Never', 'OnFailure'].includes(pod.restartPolicy), `${file}: restartPolicy`);
        assert.equal(typeof doc.spec.backoffLimit, 'number', `${file}: backoffLimit`);
        const codes: number[] = doc.spec.podFailurePolicy.rules.flatMap((r: Any) => r.onExitCodes?.values ?? []);
        const documented = new Set<number>(Object.values(ExitCode));
        for (const code of codes) assert.ok(documented.has(code), `${file}: exit code ${code} is documented`);
        for (const retry of [ExitCode.CONNECTION_FAILED, ExitCode.STREAM_FAILED, ExitCode.APPLY_STALLED, ExitCode.INTERRUPTED]) {
          assert.ok(!codes.includes(retry), `${file}: exit ${retry} is continued by a rerun, so it must not fail the Job`);
        }
        assert.equal(pod.restartPolicy, 'Never', `${file}: podFailurePolicy needs restartPolicy Never`);
      }
    }
    const secret = k8s.find((x) => x.doc.kind === 'Secret')!.doc;
    assert.deepEqual(Object.keys(secret.stringData).sort(), ['MIGRATOR_SOURCE_URI', 'MIGRATOR_TARGET_URI']);
    const service = k8s.find((x) => x.doc.kind === 'Service')!.doc;
    const monitor = k8s.find((x) => x.doc.kind === 'ServiceMonitor')!.doc;
    assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
    for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels)) assert.equal(service.metadata.labels[k], v, 'the ServiceMonitor selects the Service');
    for (const ep of monitor.spec.endpoints) {
      assert.ok(service.spec.ports.some((p: Any) => p.name === ep.port), `ServiceMonitor port ${ep.port} is a port of the Service`);
      assert.equal(ep.path, '/metrics');
    }
    assert.equal(service.spec.publishNotReadyAddresses, true, 'pods that are not ready (a standby) are scraped too');
    for (const { file, doc } of workloads) {
      for (const [k, v] of Object.entries(service.spec.selector)) assert.equal(doc.spec.template.metadata.labels[k], v, `the Service selects the pods of ${file}`);
    }
    const kustomization = k8s.find((x) => x.doc.kind === 'Kustomization')!.doc;
    const files = [...new Set(k8s.filter((x) => x.doc.kind !== 'Kustomization').map((x) => x.file))].sort();
    assert.deepEqual([...kustomization.resources].sort(), files, 'kustomization.yaml lists every manifest');
  });

  test('ECS: Fargate task definitions with the README task role policy, Secrets Manager, health check, logs', () => {
    assert.deepEqual(ecs.map((x) => x.file).sort(), ['apply-task.json', 'capture-task.json', 'full-migrate-task.json']);
    // Fargate's valid CPU/memory pairs (MiB), https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html
    const fargate: Record<string, (m: number) => boolean> = {
      '256': (m) => [512, 1024, 2048].includes(m),
      '512': (m) => m >= 1024 && m <= 4096 && m % 1024 === 0,
      '1024': (m) => m >= 2048 && m <= 8192 && m % 1024 === 0,
      '2048': (m) => m >= 4096 && m <= 16384 && m % 1024 === 0,
      '4096': (m) => m >= 8192 && m <= 30720 && m % 1024 === 0,
    };
    const readmePolicy = JSON.parse(/```json\n\s*(\{\s*"Version": "2012-10-17"[\s\S]*?)\n\s*```/.exec(readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8'))![1]!);
    const policy = JSON.parse(readFileSync(join(EXAMPLES, 'ecs', 'task-role-policy.json'), 'utf8'));
    const execPolicy = JSON.parse(readFileSync(join(EXAMPLES, 'ecs', 'execution-role-policy.json'), 'utf8'));
    const streamArn = /^arn:aws:kinesis:([a-z0-9-]+):(\d{12}):stream\/(.+)$/;
    assert.deepEqual(
      policy.Statement.map((s: Any) => ({ ...s, Resource: s.Resource.replace(streamArn, 'arn:aws:kinesis:REGION:ACCOUNT:stream/STREAM') })),
      readmePolicy.Statement,
      'task-role-policy.json is the README policy (README "Privileges") with a region, account and stream filled in',
    );
    for (const { file, task } of ecs) {
      assert.deepEqual(task.requiresCompatibilities, ['FARGATE'], file);
      assert.equal(task.networkMode, 'awsvpc', `${file}: Fargate needs awsvpc`);
      assert.ok(fargate[task.cpu]?.(Number(task.memory)), `${file}: ${task.cpu} CPU units with ${task.memory} MiB is a Fargate size`);
      assert.match(task.taskRoleArn, /^arn:aws:iam::\d{12}:role\//);
      assert.match(task.executionRoleArn, /^arn:aws:iam::\d{12}:role\//);
      const [c, ...more] = task.containerDefinitions as Any[];
      assert.equal(more.length, 0, `${file}: one container`);
      assert.equal(c.essential, true);
      assert.ok(COMMAND_NAMES.includes(c.command[0]), `${file}: command starts with a migrator command`);
      assert.equal(task.family, `migrator-${c.command[0]}`, `${file}: family names the command`);
      const env = Object.fromEntries(c.environment.map((e: Any) => [e.name, e.value]));
      const [, region, , stream] = streamArn.exec(policy.Statement[0].Resource)!;
      assert.equal(env.MIGRATOR_KINESIS_STREAM, stream, `${file}: the stream the task role may use`);
      assert.equal(env.AWS_REGION, region, `${file}: the region of the stream`);
      for (const s of c.secrets) {
        assert.match(s.valueFrom, /^arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:[^:]+:[A-Z_]+::$/, `${file}: ${s.name} from a Secrets Manager JSON key`);
        const secretArn = s.valueFrom.split(':').slice(0, 7).join(':');
        assert.ok(
          execPolicy.Statement.some((st: Any) => st.Action.includes('secretsmanager:GetSecretValue') && st.Resource === secretArn),
          `${file}: the execution role may read ${secretArn}`,
        );
      }
      const port = metricsPort(c.command, env);
      assert.ok(c.portMappings.some((p: Any) => p.containerPort === port), `${file}: the metrics port is mapped`);
      assertHealthz(`${file} healthCheck`, c.healthCheck.command, port);
      assert.equal(c.readonlyRootFilesystem, true);
      const mount = c.mountPoints.find((m: Any) => m.containerPath === '/data');
      assert.ok(mount && task.volumes.some((v: Any) => v.name === mount.sourceVolume), `${file}: /data on a task volume`);
      assert.ok(c.stopTimeout > 0 && c.stopTimeout <= 120, `${file}: stopTimeout within Fargate's 120 s`);
      assert.equal(c.logConfiguration.logDriver, 'awslogs');
      for (const k of ['awslogs-group', 'awslogs-region', 'awslogs-stream-prefix']) assert.ok(c.logConfiguration.options[k], `${file}: ${k}`);
    }
  });

  test('GitHub Actions: start, poll canCutover, approval gate, cutover --wait, exit codes', () => {
    assert.ok(workflow.on.workflow_dispatch, 'started by hand');
    const jobs = workflow.jobs as Record<string, Any>;
    assert.deepEqual(Object.keys(jobs), ['start', 'wait-ready', 'cutover']);
    assert.equal(jobs['wait-ready'].needs, 'start');
    assert.equal(jobs.cutover.needs, 'wait-ready');
    assert.ok(jobs.cutover.environment, 'the cutover job waits for approval (environment protection rules)');
    const runs = (job: string) => (jobs[job].steps as Any[]).map((s) => String(s.run ?? '')).join('\n');
    assert.match(runs('start'), /aws ecs run-task[\s\S]*--task-definition migrator-full-migrate/, 'starts the ECS task of examples/ecs');
    assert.match(runs('start'), /file:\/\/examples\/ecs\/full-migrate-task\.json/);
    assert.match(runs('wait-ready'), /\.canCutover/, 'polls canCutover');
    // The extra apply workers keep running through the cutover (full-migrate judges the shards they
    // hold by what they publish); after COMPLETED the services are scaled to 0 (their tasks exit 0
    // then, and a service would start them again).
    const steps = (jobs.cutover.steps as Any[]).map((st) => String(st.run ?? ''));
    const cutoverStep = steps.findIndex((r) => migratorCommandsIn(r).some((c) => c.startsWith('cutover')));
    assert.ok(cutoverStep >= 0, 'a migrator cutover step');
    for (const service of ['migrator-apply', 'migrator-capture']) {
      const scaledDown = steps.findIndex((r) => new RegExp(`--service ${service} --desired-count 0`).test(r));
      assert.ok(scaledDown > cutoverStep, `${service} is scaled to 0 after the cutover, not before`);
    }
    const cutover = runs('cutover');
    const arms = [...cutover.matchAll(/^\s*([0-9|]+|\*)\)/gm)].map((m) => m[1]!);
    assert.ok(arms.includes('*'), 'a default arm for every other exit code');
    const codes = arms.filter((a) => a !== '*').flatMap((a) => a.split('|').map(Number));
    const documented = new Set<number>(Object.values(ExitCode));
    for (const code of codes) assert.ok(documented.has(code), `exit code ${code} is in README "Exit codes"`);
    // README: `cutover --wait --timeout` exits 0 when COMPLETED, the failure's code, 10 if aborted, 9 on timeout.
    for (const code of [ExitCode.OK, ExitCode.TIMEOUT, ExitCode.STATE_CONFLICT, ExitCode.VERIFICATION_MISMATCH]) {
      assert.ok(codes.includes(code), `the cutover step handles exit ${code}`);
    }
  });

  test('examples/README.md names every example file', () => {
    const readme = readFileSync(join(EXAMPLES, 'README.md'), 'utf8');
    for (const file of listFiles()) {
      if (basename(file) === 'README.md') continue;
      assert.ok(readme.includes(basename(file)), `examples/README.md mentions ${rel(file)}`);
    }
  });
});
