/** Re-renders the markdown of a results file: `npx tsx bench/render.ts bench/results/latest.json > out.md` */
import { readFileSync } from 'node:fs';
import { renderMarkdown, type BenchResults } from './lib/report.js';

process.stdout.write(renderMarkdown(JSON.parse(readFileSync(process.argv[2] ?? 'bench/results/latest.json', 'utf8')) as BenchResults));
