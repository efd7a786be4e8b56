/**
 * The local stack of the benchmarks, every server in its own process so that the migrator's CPU
 * and memory can be told apart from the emulators': a source and a target MongoDB emulator
 * (packages/mongo-emulator/src/bin.ts) and kinesis-local (test/support/kinesis-local.ts).
 */
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { startKinesisLocal, type KinesisLocal } from '../../test/support/kinesis-local.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface EmulatorProcess {
  uri: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startEmulatorProcess(name: string, historyLimit: number): Promise<EmulatorProcess> {
  const bin = path.join(ROOT, 'packages/mongo-emulator/src/bin.ts');
  const child: ResultPromise = execa(process.execPath, ['--import', 'tsx', '--max-old-space-size=8192', bin, '--port', '0', '--history-limit', String(historyLimit)], {
    cwd: ROOT,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    cleanup: true,
    forceKillAfterDelay: 5000,
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (l) => resolve(l));
    void child.then((r) => reject(new Error(`${name} emulator exited (${String(r.exitCode)}): ${stderr}`)));
  });
  const { uri } = JSON.parse(line) as { uri: string };
  let stopped: Promise<void> | undefined;
  return {
    uri,
    pid: child.pid!,
    stop: () =>
      (stopped ??= (async () => {
        child.kill('SIGTERM');
        await child;
      })()),
  };
}

export interface Stack {
  source: EmulatorProcess;
  target: EmulatorProcess;
  kinesis: KinesisLocal;
  pids: Record<string, number>;
  stop(): Promise<void>;
}

export async function startStack(opts: { historyLimit: number }): Promise<Stack> {
  const [source, target, kinesis] = await Promise.all([
    startEmulatorProcess('source', opts.historyLimit),
    startEmulatorProcess('target', 1000),
    startKinesisLocal({ env: { LOG_LEVEL: 'ERROR' } }),
  ]);
  return {
    source,
    target,
    kinesis,
    pids: { source: source.pid, target: target.pid, kinesis: kinesis.pid },
    stop: async () => {
      await Promise.allSettled([source.stop(), target.stop(), kinesis.stop()]);
    },
  };
}
