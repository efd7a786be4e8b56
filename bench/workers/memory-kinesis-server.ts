/**
 * The in-memory shard log (lib/memory-kinesis.ts) as its own process, serving the Kinesis JSON API
 * over HTTP/1.1 on loopback. Prints `{"endpoint": ...}` when ready; on a line `stats` on stdin it
 * prints the log's stats as JSON; exits when stdin closes.
 */
import { createInterface } from 'node:readline';
import { MemoryKinesis, serveMemoryKinesis } from '../lib/memory-kinesis.js';

const [stream, shards] = [process.argv[2] ?? 'bench', Number(process.argv[3] ?? 4)];
const mem = new MemoryKinesis(stream, shards);
const server = await serveMemoryKinesis(mem);
process.stdout.write(JSON.stringify({ endpoint: server.endpoint }) + '\n');
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() === 'stats') process.stdout.write(JSON.stringify({ ...mem.stats, ...mem.summary() }) + '\n');
});
rl.on('close', () => process.exit(0));
