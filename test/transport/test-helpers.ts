/** Small helpers shared by the transport tests. */

import { prng } from '../support/prng.js';

export { prng };

export function randInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

/** Random bytes; `compressible` ones repeat a small alphabet of words. */
export function randomPayload(rand: () => number, size: number, compressible: boolean): Uint8Array {
  const out = new Uint8Array(size);
  if (compressible) {
    const words = ['insert', 'update', 'orders', 'status', 'shipped', '_id', 'qty', '"sku":', '{', '}', ' '];
    let i = 0;
    while (i < size) {
      const w = words[Math.floor(rand() * words.length)];
      for (let j = 0; j < w.length && i < size; j++) out[i++] = w.charCodeAt(j);
    }
  } else {
    for (let i = 0; i < size; i++) out[i] = Math.floor(rand() * 256);
  }
  return out;
}

/** A payload that names its key and per-key index, so order and loss can be checked after transport. */
export function taggedPayload(key: string, index: number, padTo = 0, fill = 0x2e): Uint8Array {
  const head = Buffer.from(`${key}#${index};`, 'utf8');
  if (padTo <= head.length) return new Uint8Array(head);
  const out = new Uint8Array(padTo);
  out.fill(fill);
  out.set(head, 0);
  return out;
}

/** Parses a payload made by {@link taggedPayload}. */
export function parseTagged(payload: Uint8Array): { key: string; index: number } {
  const end = payload.indexOf(0x3b); // ';'
  const text = Buffer.from(payload.subarray(0, end)).toString('utf8');
  const hash = text.lastIndexOf('#');
  return { key: text.slice(0, hash), index: Number(text.slice(hash + 1)) };
}

/** Byte equality without a huge diff on failure. */
export function assertBytesEqual(actual: Uint8Array, expected: Uint8Array, message = 'bytes differ'): void {
  if (actual.length !== expected.length || Buffer.compare(actual, expected) !== 0) {
    let i = 0;
    while (i < Math.min(actual.length, expected.length) && actual[i] === expected[i]) i++;
    throw new Error(`${message}: lengths ${actual.length}/${expected.length}, first difference at ${i}`);
  }
}
