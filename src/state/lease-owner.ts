/**
 * Lease owner ids: `host:pid:random`, unique per process incarnation. The host and pid let a
 * process recognise a lease left behind by a dead process on the same machine (a crashed run, or
 * pid 1 of a restarted container) and take it over at once instead of waiting for its expiry.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

export function defaultOwnerId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/** True when `owner` names a process of this machine that no longer runs (or an earlier incarnation of ours). */
export function isDeadLocalOwner(owner: string): boolean {
  const parts = owner.split(':');
  if (parts.length < 3) return false;
  const pid = Number(parts[parts.length - 2]);
  const host = parts.slice(0, -2).join(':');
  if (host !== hostname() || !Number.isInteger(pid) || pid <= 0) return false;
  // Our own pid: an earlier incarnation (this process has not taken the lease yet), e.g. pid 1 in a
  // restarted container.
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
