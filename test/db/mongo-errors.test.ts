import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Int32, MongoServerError } from 'mongodb';
import {
  MongoErrorCode,
  TRANSIENT_CODES,
  errorCode,
  hasErrorCode,
  isBsonObjectTooLarge,
  isChangeStreamRetryable,
  isDuplicateKey,
  isHistoryLost,
  isIndexConflict,
  isIndexNotFound,
  isMaxTimeExpired,
  isNamespaceExists,
  isNamespaceNotFound,
  isResumeTokenRejected,
  isUnauthorized,
  isUserWritesBlocked,
} from '../../src/db/mongo-errors.js';
import { isTransientError } from '../../src/db/transient-errors.js';
import { captureFailure } from '../../src/source/capture-errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { PROJECT_ROOT } from '../support/cli.js';

const server = (code: number, message = `code ${code}`) => new MongoServerError({ message, code, errmsg: message });
/** As a change stream read with promoteValues: false reports it. */
const wrapped = (code: number) => Object.assign(new Error(`code ${code}`), { code: new Int32(code) });

describe('MongoDB error codes (https://www.mongodb.com/docs/manual/reference/error-codes/)', () => {
  test('the names the product relies on have the manual\'s numbers', () => {
    // Copied from the manual's table, independently of the module.
    const manual: Record<string, number> = {
      FailedToParse: 9, Unauthorized: 13, NamespaceNotFound: 26, IndexNotFound: 27, CursorNotFound: 43, NamespaceExists: 48,
      MaxTimeMSExpired: 50, ShardKeyNotFound: 61, StaleShardVersion: 63, IndexOptionsConflict: 85, IndexKeySpecsConflict: 86,
      CappedPositionLost: 136, StaleEpoch: 150, RetryChangeStream: 234, InvalidResumeToken: 260, ChangeStreamFatalError: 280,
      ChangeStreamHistoryLost: 286, UserWritesBlocked: 371, BSONObjectTooLarge: 10334, DuplicateKey: 11000, StaleConfig: 13388,
      HostUnreachable: 6, HostNotFound: 7, NotWritablePrimary: 10107, InterruptedDueToReplStateChange: 11602, PrimarySteppedDown: 189,
    };
    for (const [name, code] of Object.entries(manual)) assert.equal(MongoErrorCode[name as keyof typeof MongoErrorCode], code, name);
  });

  test('one name per number', () => {
    const codes = Object.values(MongoErrorCode);
    assert.equal(new Set(codes).size, codes.length);
  });

  test('errorCode reads plain numbers and Int32 wrappers; anything else has none', () => {
    assert.equal(errorCode(server(26)), 26);
    assert.equal(errorCode(wrapped(286)), 286);
    assert.equal(errorCode(new Error('x')), undefined);
    assert.equal(errorCode(Object.assign(new Error('x'), { code: 'ECONNRESET' })), undefined);
    assert.equal(errorCode(undefined), undefined);
    assert.ok(hasErrorCode(wrapped(11000), 'DuplicateKey'));
  });

  test('one predicate per question', () => {
    const cases: [(e: unknown) => boolean, number[], number[]][] = [
      [isDuplicateKey, [11000], [26, 11001]],
      [isNamespaceNotFound, [26], [48, 27]],
      [isNamespaceExists, [48], [26]],
      [isIndexNotFound, [27], [26]],
      [isIndexConflict, [85, 86], [27, 11000]],
      [isUnauthorized, [13], [18, 371]],
      [isUserWritesBlocked, [371], [13]],
      [isMaxTimeExpired, [50], [262]],
      [isBsonObjectTooLarge, [10334], [10107]],
      [isHistoryLost, [286, 136], [260, 280]],
      [isChangeStreamRetryable, [43, 63, 150, 234, 13388], [286, 260, 26]],
    ];
    for (const [predicate, yes, no] of cases) {
      for (const code of yes) {
        assert.ok(predicate(server(code)), `${predicate.name}(${code})`);
        assert.ok(predicate(wrapped(code)), `${predicate.name}(Int32 ${code})`);
      }
      for (const code of no) assert.equal(predicate(server(code)), false, `${predicate.name}(${code})`);
      assert.equal(predicate(new Error('no code')), false);
    }
  });

  test('a rejected resume token: 260 and 280 always, DocumentDB\'s FailedToParse (9) only for a stream opened with a token', () => {
    assert.ok(isResumeTokenRejected(server(260), false));
    assert.ok(isResumeTokenRejected(server(280), false));
    assert.ok(isResumeTokenRejected(server(9), true));
    assert.equal(isResumeTokenRejected(server(9), false), false);
    assert.equal(isResumeTokenRejected(server(286), true), false);
  });

  test('every transient code is retried; history loss, bad tokens, duplicate keys are not', () => {
    for (const code of TRANSIENT_CODES) assert.ok(isTransientError(server(code)), String(code));
    for (const code of [286, 136, 260, 280, 11000, 26, 48, 13]) assert.equal(isTransientError(server(code)), false, String(code));
  });

  test('capture stops on history loss (exit HISTORY_LOST) and on a foreign token (exit STATE_CONFLICT), naming the code', () => {
    const lost = captureFailure(wrapped(286), 'the checkpoint', true);
    assert.equal(lost?.exitCode, ExitCode.HISTORY_LOST);
    assert.match(lost?.message ?? '', /error 286/);
    assert.equal(captureFailure(server(136), 'now', false)?.exitCode, ExitCode.HISTORY_LOST, 'DocumentDB');
    assert.equal(captureFailure(server(260), 'now', false)?.exitCode, ExitCode.STATE_CONFLICT);
    assert.equal(captureFailure(server(9), 'token x', true)?.exitCode, ExitCode.STATE_CONFLICT);
    assert.equal(captureFailure(server(9), 'now', false), undefined, 'FailedToParse without a token is something else');
    assert.equal(captureFailure(server(91), 'now', false), undefined);
  });

  test('no source file compares a server error code with a bare number (the names live in db/mongo-errors.ts)', () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (path.endsWith('.ts') && !path.endsWith('mongo-errors.ts')) files.push(path);
      }
    };
    walk(join(PROJECT_ROOT, 'src'));
    const bare = /\b(?:code|errorCode\([^)]*\))\s*[!=]==?\s*\d{1,5}\b/;
    const offenders = files.flatMap((f) => readFileSync(f, 'utf8').split('\n').map((line, i) => [f, i + 1, line] as const)).filter(([, , line]) => bare.test(line));
    assert.deepEqual(offenders.map(([f, n, line]) => `${f}:${n}: ${line.trim()}`), []);
  });
});
