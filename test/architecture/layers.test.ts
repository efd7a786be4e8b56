import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { ESLint } from 'eslint';
// @ts-expect-error plain JS module without declarations (the ESLint rule itself)
import { layerOf } from '../../scripts/eslint/layers.js';

const root = join(import.meta.dirname, '..', '..');

async function lint(file: string, code: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: root });
  const [result] = await eslint.lintText(code, { filePath: join(root, file) });
  return result!.messages.filter((m) => m.ruleId === 'migrator/layers').map((m) => m.message);
}

describe('architecture: the layer rule (scripts/eslint/layers.js)', () => {
  it('rejects a backward import and a sibling import, accepts a downward one', async () => {
    const backward = await lint('src/state/example.ts', "import { runCli } from '../cli/run.js';\nexport const x = runCli;\n");
    assert.equal(backward.length, 1);
    assert.match(backward[0]!, /'state\/example\.ts' \(layer \d\) must not import 'cli\/run\.js'/);
    const sibling = await lint('src/apply/example.ts', "import { MARKER_COLLECTION } from '../source/capture-runner.js';\nexport const x = MARKER_COLLECTION;\n");
    assert.match(sibling[0] ?? '', /must not import its sibling 'source\/capture-runner\.js'/);
    assert.deepEqual(await lint('src/apply/example.ts', "import { retry } from '../util/retry.js';\nexport const x = retry;\n"), []);
  });

  it('places every module of src/ in a layer', () => {
    const walk = (dir: string): string[] => readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : [join(dir, n)]));
    const unplaced = walk(join(root, 'src')).map((f) => relative(join(root, 'src'), f)).filter((f) => !layerOf(f));
    assert.deepEqual(unplaced, []);
  });
});
