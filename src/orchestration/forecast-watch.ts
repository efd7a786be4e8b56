import type { StateStore } from '../state/store.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { buildStatusReport, readStatusInputs } from './status-report.js';

/**
 * During the load, once a minute: the load's last-minute throughput and the retention forecast
 * (forecast.ts, the same computation as `status`), logged; a forecast that is not ok is a
 * warning, repeated every 10 minutes while it stays so (never silent, never a flood). One
 * state-store read a minute; a failed read is skipped.
 */
export function watchForecast(store: StateStore, migrationId: string, parentLog: Logger, intervalMs = 60_000): { stop: () => void } {
  const log = parentLog.child({ component: 'forecast' });
  let lastWarnMs = 0;
  const tick = async () => {
    const r = buildStatusReport(await readStatusInputs(store, migrationId));
    const t = r.load?.throughput;
    if (t) log.info({ bytesPerSecond: t.bytesPerSecond, documentsPerSecond: t.documentsPerSecond, etaSeconds: r.load?.throughputEtaSeconds }, 'load throughput over the last minute');
    const f = r.forecast;
    if (f && f.ok === false && Date.now() - lastWarnMs >= 10 * intervalMs) {
      lastWarnMs = Date.now();
      for (const w of f.warnings) log.warn({ marginHours: f.marginHours, requiredHours: f.requiredHours, streamRetentionHours: f.streamRetentionHours }, `retention forecast: ${w}`);
    }
  };
  const timer = setInterval(() => void tick().catch((err: unknown) => log.debug({ err: errorMessage(err) }, 'forecast not computed')), intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
