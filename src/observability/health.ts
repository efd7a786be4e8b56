/**
 * Liveness (`/healthz`) and readiness (`/readyz`) of a long-running command.
 *
 * LIVENESS: the HTTP server answering proves the event loop answers; on top of that every main
 * loop of the command (capture's change-stream loop, apply's read/apply loop, the orchestrator of
 * full-migrate / initial-load) owns a {@link Heartbeat} it beats whenever it makes progress or
 * finishes one round of a legitimate wait (a standby polling for a lease, an idle change stream's
 * getMore, an empty GetRecords, a poll for the initial load, a DDL rendezvous poll). A loop is
 * WEDGED when its heartbeat has not moved for `boundMs` (`--liveness-bound`, default
 * {@link DEFAULT_LIVENESS_BOUND_MS}, 5 minutes: well above every wait of one round — getMore 0.5 s, GetRecords idle poll ≤ 1 s,
 * lease/discovery polls ≤ 10 s, a target write's 60 s timeout before its retry, Kinesis backoff
 * ≤ 5 s, state-store retries ≤ 60 s). Steps that are long and report no progress of their own —
 * the initial load's mongodump | mongorestore (index builds print nothing) and the cutover's
 * verification — are run inside `heartbeat.during(what, …)`: the loop counts as waiting for them,
 * not wedged (their progress shows in `status`), so a liveness probe never kills a healthy load.
 *
 * Beats are counter increments (`beat()`): nothing else runs on the hot path. The checker samples
 * the counters (on every probe and once a second while the server runs) and notes when each last
 * changed; a change seen between two samples counts at the later sample's time, so a wedge is
 * reported within `boundMs` plus one sampling period.
 *
 * READINESS: named components (capture, apply, the orchestrator) report whether they do their work
 * now: a capture standing by for the capture lease, an apply holding no shard lease or waiting for
 * the initial load, a command still connecting are not ready. The command chooses which components
 * gate its readiness; the connectivity checks (databases pinged, the stream's last answer) are
 * added by the server (src/observability/server.ts).
 */

export const DEFAULT_LIVENESS_BOUND_MS = 5 * 60_000;

export class Heartbeat {
  /** Incremented by the loop; read by the checker. */
  beats = 0;
  /** Set while the loop legitimately waits on a long step without progress reports. */
  waitingFor: string | undefined;
  /** Checker state: the count last seen and when it was first seen. */
  seenBeats = 0;
  seenAtMs = 0;

  constructor(
    readonly name: string,
    readonly boundMs: number,
    nowMs: number,
    /** Progress counted elsewhere (e.g. GetRecords calls started), added to the beats. */
    private readonly extra?: () => number,
  ) {
    this.seenAtMs = nowMs;
    this.seenBeats = this.progress;
  }

  /** Beats plus the extra progress count. */
  get progress(): number {
    return this.beats + (this.extra?.() ?? 0);
  }

  beat(): void {
    this.beats++;
  }

  /** Runs a long step during which the loop is waiting, not wedged; a beat follows it. */
  async during<T>(what: string, work: Promise<T> | (() => Promise<T>)): Promise<T> {
    const outer = this.waitingFor;
    this.waitingFor = what;
    try {
      return await (typeof work === 'function' ? work() : work);
    } finally {
      this.waitingFor = outer;
      this.beats++;
    }
  }
}

export interface LoopHealth {
  name: string;
  ok: boolean;
  /** Milliseconds since the loop's heartbeat was last seen moving. */
  sinceProgressMs: number;
  boundMs: number;
  waitingFor: string | null;
}

export interface Liveness {
  ok: boolean;
  /** Why not, in one line (absent when ok). */
  reason?: string;
  loops: LoopHealth[];
}

export type ComponentState = { ready: boolean; state: string; detail?: string };

export interface Readiness {
  ok: boolean;
  reason?: string;
  components: Record<string, ComponentState>;
}

/** Heartbeats and readiness components of one process. */
export class HealthRegistry {
  private readonly loops = new Set<Heartbeat>();
  private readonly components = new Map<string, () => ComponentState>();
  /** The bound of loops registered without one (--liveness-bound). */
  defaultBoundMs = DEFAULT_LIVENESS_BOUND_MS;

  constructor(private readonly now: () => number = Date.now) {}

  /** A heartbeat for a main loop; `unregister` it when the loop ends. */
  register(name: string, boundMs?: number, extraProgress?: () => number): Heartbeat {
    const hb = new Heartbeat(name, boundMs ?? this.defaultBoundMs, this.now(), extraProgress);
    this.loops.add(hb);
    return hb;
  }

  unregister(hb: Heartbeat | undefined): void {
    if (hb) this.loops.delete(hb);
  }

  /** A readiness component (replaces one of the same name); returns its removal. */
  component(name: string, state: () => ComponentState): () => void {
    this.components.set(name, state);
    return () => {
      if (this.components.get(name) === state) this.components.delete(name);
    };
  }

  /** Samples the heartbeats (see the module comment); called on every check and by a timer. */
  sample(): void {
    const now = this.now();
    for (const hb of this.loops) {
      const progress = hb.progress;
      if (progress !== hb.seenBeats || hb.waitingFor !== undefined) {
        hb.seenBeats = progress;
        hb.seenAtMs = now;
      }
    }
  }

  liveness(): Liveness {
    this.sample();
    const now = this.now();
    const loops: LoopHealth[] = [...this.loops].map((hb) => {
      const since = now - hb.seenAtMs;
      return { name: hb.name, ok: hb.waitingFor !== undefined || since <= hb.boundMs, sinceProgressMs: since, boundMs: hb.boundMs, waitingFor: hb.waitingFor ?? null };
    });
    const wedged = loops.filter((l) => !l.ok);
    if (wedged.length === 0) return { ok: true, loops };
    const reason = wedged
      .map((l) => `${l.name} made no progress for ${Math.round(l.sinceProgressMs / 1000)} s (bound ${Math.round(l.boundMs / 1000)} s): wedged`)
      .join('; ');
    return { ok: false, reason, loops };
  }

  /** Ready when every component named in `gating` (default: all) is ready. */
  readiness(gating?: readonly string[]): Readiness {
    const components: Record<string, ComponentState> = {};
    for (const [name, get] of this.components) {
      try {
        components[name] = get();
      } catch (err) {
        components[name] = { ready: false, state: 'error', detail: err instanceof Error ? err.message : String(err) };
      }
    }
    const names = gating ?? Object.keys(components);
    const notReady = names.filter((n) => !components[n]?.ready);
    if (notReady.length === 0) return { ok: true, components };
    const reason = notReady
      .map((n) => (components[n] ? `${n}: ${components[n]!.state}${components[n]!.detail ? ` (${components[n]!.detail})` : ''}` : `${n}: not started`))
      .join('; ');
    return { ok: false, reason, components };
  }
}

/** The process's registry: the pipeline's loops register here (one process runs one command). */
export const health = new HealthRegistry();
