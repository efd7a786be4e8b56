/**
 * Parses the stderr lines of mongodump and mongorestore (MongoDB Database Tools 100.x) into progress
 * events. The tools prefix every line with an ISO timestamp and a tab; progress bars look like
 * `[####....]  bar.products  1200/5000  (24.0%)`.
 */
export type ToolEvent =
  | { kind: 'dump-started'; ns: string }
  | { kind: 'dump-progress'; ns: string; done: number; total: number }
  | { kind: 'dump-finished'; ns: string; documents: number }
  | { kind: 'restore-finished'; ns: string; documents: number; failures: number }
  | { kind: 'restore-summary'; restored: number; failed: number }
  | { kind: 'indexes'; ns: string }
  | { kind: 'error'; message: string };

const stripTimestamp = (line: string) => line.replace(/^\d{4}-\d\d-\d\dT[\d:.]+(?:[+-]\d{4}|Z)?\s+/, '').trim();

export function parseToolLine(raw: string): ToolEvent | undefined {
  const line = stripTimestamp(raw);
  let m: RegExpExecArray | null;
  if ((m = /^writing (\S+) to archive/.exec(line))) return { kind: 'dump-started', ns: m[1]! };
  if ((m = /^\[[#.]*\]\s+(\S+)\s+(\d+)\/(\d+)\s+\(/.exec(line))) {
    return { kind: 'dump-progress', ns: m[1]!, done: Number(m[2]), total: Number(m[3]) };
  }
  if ((m = /^done dumping (\S+) \((\d+) documents?\)/.exec(line))) {
    return { kind: 'dump-finished', ns: m[1]!, documents: Number(m[2]) };
  }
  if ((m = /^finished restoring (\S+) \((\d+) documents?, (\d+) failures?\)/.exec(line))) {
    return { kind: 'restore-finished', ns: m[1]!, documents: Number(m[2]), failures: Number(m[3]) };
  }
  if ((m = /^(\d+) document\(s\) restored successfully\. (\d+) document\(s\) failed to restore/.exec(line))) {
    return { kind: 'restore-summary', restored: Number(m[1]), failed: Number(m[2]) };
  }
  if ((m = /^restoring indexes for collection (\S+) from metadata/.exec(line))) return { kind: 'indexes', ns: m[1]! };
  if ((m = /^(?:Failed|error)[: ](.*)$/i.exec(line))) return { kind: 'error', message: m[1]!.trim() };
  return undefined;
}

/** Keeps the last `max` lines of a process's stderr, for error messages. */
export class LineTail {
  private lines: string[] = [];
  constructor(private readonly max = 20) {}
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  text(): string {
    return this.lines.join('\n');
  }
}
