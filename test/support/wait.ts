// Waiting in tests: one polling loop and one sleep for every test folder (never assert on how long
// a wait took: the machines are shared and slow).

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` (sync or async) every `everyMs` until it holds; fails naming `what` after `ms`. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, ms: number, what: string, everyMs = 50): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(everyMs);
  }
  if (await cond()) return;
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

