/**
 * Stands in for the source server of the in-process benchmark: writes `count` synthetic change
 * events as concatenated BSON documents to stdout (as a server's getMore replies carry them), as
 * fast as the reader takes them. Runs in its own process so that generating the data is not
 * counted as the migrator's CPU.
 */
import { BSON } from 'mongodb';
import { ChangeEventGenerator } from '../lib/change-events.js';
import { MIXES } from '../lib/workload.js';

const [count, bytes, mix, seed] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4] ?? 'mixed', Number(process.argv[5] ?? 1)];
const gen = new ChangeEventGenerator(bytes, MIXES[mix]!, seed);
const CHUNK = 256 * 1024;
let parts: Uint8Array[] = [];
let size = 0;
for (let i = 0; i < count; i++) {
  const b = BSON.serialize(gen.next());
  parts.push(b);
  size += b.length;
  if (size >= CHUNK) {
    if (!process.stdout.write(Buffer.concat(parts))) await new Promise((r) => process.stdout.once('drain', r));
    parts = [];
    size = 0;
  }
}
if (parts.length > 0) process.stdout.write(Buffer.concat(parts));
process.stdout.end();
