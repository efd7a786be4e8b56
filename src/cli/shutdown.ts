/**
 * SIGINT/SIGTERM → an AbortSignal: long-running commands finish the unit of work in hand, save
 * their checkpoint and exit with INTERRUPTED (130). A second signal exits at once; the state store
 * is still consistent because checkpoints only ever record durable progress.
 */
export function shutdownSignal(onSignal?: (name: string) => void): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const handler = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    onSignal?.(name);
    controller.abort(new Error(`received ${name}`));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
