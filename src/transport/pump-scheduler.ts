/**
 * When the producer's pump runs next: `soon()` coalesces requests into one microtask; `at(t)`
 * keeps one timer for the earliest requested time (performance.now() clock); `cancel()` drops it.
 */
export class PumpScheduler {
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private scheduled = false;

  constructor(private readonly run: () => void) {}

  soon(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.run();
    });
  }

  at(when: number): void {
    if (when >= this.timerAt) return;
    this.cancel();
    this.timerAt = when;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.run();
    }, Math.max(0, when - performance.now()));
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}
