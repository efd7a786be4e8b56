import { UsageError } from '../util/errors.js';

/**
 * Sizes in options (`--partition-size 4MiB`): a number with an optional binary unit B, KiB, MiB,
 * GiB, TiB (KB/MB/GB/TB and K/M/G/T are read as the same powers of 1024). Returns bytes, or
 * undefined for text that is not such a size.
 */
const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text) ?? /^\s*(\d+(?:\.\d+)?)\s*(b)\s*$/i.exec(text);
  if (!m) return undefined;
  const bytes = Math.round(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  return Number.isFinite(bytes) ? bytes : undefined;
}

/** Default --partition-size: about 1 GiB per `_id` range (issue #13). */
export const DEFAULT_PARTITION_SIZE = '1GiB';

/** --partition-size and --load-parallelism, validated (one UsageError naming the option). */
export function loadScale(argv: { 'partition-size'?: string; 'load-parallelism'?: number }): { partitionSize: number; parallelism: number } {
  const text = String(argv['partition-size'] ?? DEFAULT_PARTITION_SIZE);
  const partitionSize = parseSize(text);
  // Below 64 KiB a range would hold a handful of documents: a sign of a typo (64 instead of 64MiB).
  if (partitionSize === undefined || partitionSize < 64 * 1024) {
    throw new UsageError(`Invalid --partition-size (MIGRATOR_PARTITION_SIZE): "${text}".`, 'Give a size of at least 64KiB, like 512MiB or 1GiB.');
  }
  const parallelism = Number(argv['load-parallelism'] ?? 2);
  if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > 64) {
    throw new UsageError(`Invalid --load-parallelism (MIGRATOR_LOAD_PARALLELISM): "${String(argv['load-parallelism'])}".`, 'Give a whole number from 1 to 64 (2 suits a 2-core container).');
  }
  return { partitionSize, parallelism };
}
