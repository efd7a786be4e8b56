/**
 * A `migrator` process kept running the way a container orchestrator would: restarted after it
 * exits by itself (exit code recorded), and after the chaos test SIGKILLs it.
 */
import { execa, type ResultPromise } from 'execa';
import { PROJECT_ROOT } from '../support/cli.js';

const MAIN = `${PROJECT_ROOT}/src/cli/main.ts`;

export class Supervised {
  private proc: ResultPromise | undefined;
  private stopping = false;
  private killing = false;
  private loop: Promise<void> | undefined;
  kills = 0;
  /** Exits the process chose itself (not our SIGKILL), by exit code. */
  readonly exits = new Map<number, number>();
  /** Last stderr lines of every self-exit, for the failure message. */
  readonly exitTails: string[] = [];
  private lastResult: { exitCode?: number; stderr: unknown } | undefined;

  constructor(
    readonly name: string,
    private readonly args: string[],
    private readonly restartDelayMs = 500,
    /** The whole environment of every incarnation (as a container's); default: this process's, plus CI=true. */
    private readonly env?: Record<string, string>,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopping) {
        this.proc = execa(process.execPath, ['--import', 'tsx', MAIN, ...this.args], {
          cwd: PROJECT_ROOT,
          reject: false,
          stdin: 'ignore',
          env: this.env ?? { CI: 'true' },
          extendEnv: this.env === undefined,
          forceKillAfterDelay: 10_000, // docker stop's grace period
        });
        const r = await this.proc;
        this.lastResult = r;
        if (this.stopping) return;
        if (this.killing) {
          this.killing = false;
          continue;
        }
        const code = r.exitCode ?? -1;
        this.exits.set(code, (this.exits.get(code) ?? 0) + 1);
        const tail = String(r.stderr).split('\n').filter((l) => l.trim() && !l.includes('"level":30')).slice(-4).join('\n');
        this.exitTails.push(`${this.name} exited ${code}: ${tail.slice(0, 1500)}`);
        if (code === 0) return; // done (e.g. full-migrate after COMPLETED)
        await new Promise((r2) => setTimeout(r2, this.restartDelayMs));
      }
    })();
  }

  /** SIGKILL now; the loop starts a new incarnation at once. False when nothing was running. */
  async kill(): Promise<boolean> {
    const p = this.proc;
    if (!p || p.exitCode !== null || this.killing || this.stopping) return false;
    this.killing = true;
    p.kill('SIGKILL');
    await p.catch(() => undefined);
    this.kills++;
    return true;
  }

  get running(): boolean {
    return Boolean(this.proc && this.proc.exitCode === null && !this.killing);
  }

  /** Waits for the supervised run to finish by itself (exit 0). */
  async finished(): Promise<{ exitCode?: number; stderr: unknown } | undefined> {
    await this.loop;
    return this.lastResult;
  }

  /** Stops supervising; sends `signal` to the current incarnation and returns its result. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ exitCode?: number; stderr: unknown } | undefined> {
    this.stopping = true;
    if (this.proc && this.proc.exitCode === null) this.proc.kill(signal);
    await this.loop;
    return this.lastResult;
  }
}
