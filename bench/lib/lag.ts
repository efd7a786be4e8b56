/**
 * End-to-end lag: documents written by workers/writer.ts carry `t` = wall-clock ms of the source
 * write; the recorder watches the target client's commands (monitorCommands) and, when an
 * insert/update command on the target database succeeds, records now − t for every document in it.
 */
import type { CommandStartedEvent, CommandSucceededEvent, Document, MongoClient } from 'mongodb';

export const wallMs = () => performance.timeOrigin + performance.now();

function tOf(doc: Document | undefined): number | undefined {
  if (!doc) return undefined;
  const t = doc.t ?? doc.$set?.t;
  if (t === undefined || t === null) return undefined;
  const n = typeof t === 'number' ? t : Number((t as { valueOf(): unknown }).valueOf());
  return Number.isFinite(n) ? n : undefined;
}

export class LagRecorder {
  private readonly pending = new Map<number, number[]>();
  private samples: number[] = [];
  constructor(private readonly db: string) {}

  attach(client: MongoClient): void {
    client.on('commandStarted', (e: CommandStartedEvent) => {
      if (e.databaseName !== this.db) return;
      const ts: number[] = [];
      if (e.commandName === 'update') for (const u of (e.command.updates as Document[] | undefined) ?? []) {
        const t = tOf(u.u as Document);
        if (t !== undefined) ts.push(t);
      } else if (e.commandName === 'insert') for (const d of (e.command.documents as Document[] | undefined) ?? []) {
        const t = tOf(d);
        if (t !== undefined) ts.push(t);
      }
      if (ts.length > 0) this.pending.set(e.requestId, ts);
    });
    client.on('commandSucceeded', (e: CommandSucceededEvent) => {
      const ts = this.pending.get(e.requestId);
      if (!ts) return;
      this.pending.delete(e.requestId);
      const now = wallMs();
      for (const t of ts) this.samples.push(now - t);
    });
  }

  reset(): void {
    this.samples = [];
  }

  get count(): number {
    return this.samples.length;
  }

  /** p50/p90/p99/max in ms of the writes seen applied. */
  summary() {
    const s = [...this.samples].sort((x, y) => x - y);
    const q = (p: number) => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(p * s.length))]!);
    return {
      samples: s.length,
      p50Ms: q(0.5),
      p90Ms: q(0.9),
      p99Ms: q(0.99),
      maxMs: s.length ? s[s.length - 1] : NaN,
      meanMs: s.length ? s.reduce((x, y) => x + y, 0) / s.length : NaN,
    };
  }
}
