// The load's flags as a user types them, through the real parser (parseOnly: exactly runCli's
// parsing, without running the command).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseOnly } from '../../src/cli/run.js';
import { loadOptions, type LoadArgs } from '../../src/cli/commands/full-migrate.js';

const base = ['--source-uri', 'mongodb://s/', '--target-uri', 'mongodb://t/', '--kinesis-stream', 'x', '--migration-id', 'm'];

describe('load options', () => {
  it('--no-index-restore is accepted by full-migrate and initial-load and turns the index restore off', () => {
    for (const cmd of ['full-migrate', 'initial-load']) {
      // Before: yargs read --no-index-restore as the negation of an unknown 'index-restore' (exit 2).
      const { args } = parseOnly([cmd, ...base, '--no-index-restore']);
      assert.equal(loadOptions(args as LoadArgs).noIndexRestore, true, cmd);
      assert.equal(loadOptions(parseOnly([cmd, ...base]).args as LoadArgs).noIndexRestore, false, cmd);
    }
  });

  it('MIGRATOR_INDEX_RESTORE=false does the same', () => {
    const { args, unknownEnv } = parseOnly(['full-migrate', ...base], { MIGRATOR_INDEX_RESTORE: 'false' });
    assert.deepEqual(unknownEnv, []);
    assert.equal(loadOptions(args as LoadArgs).noIndexRestore, true);
  });
});
