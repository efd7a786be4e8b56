import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { ensureGoTools } from '../support/go-tools.js';
import { ROOT_ONLY, ROOT_USER, uriAs } from '../support/migrator-users.js';
import { StateStore } from '../../src/state/store.js';
import { recreateCustomRoles } from '../../src/db/users-roles.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { killQuietly, spawnFullMigrate, waitGone } from '../support/full-migrate-process.js';
import { waitForPhase } from '../support/phases.js';

/** full-migrate --with-roles: the custom roles of the selected databases exist on the target, mapped; users do not. */
describe('full-migrate --with-roles', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let src: MongoClient;
  let dst: MongoClient;
  before(async () => {
    await ensureGoTools();
    [source, target] = await Promise.all([startMongoEmulator({ auth: ROOT_ONLY }), startMongoEmulator({ auth: ROOT_ONLY })]);
    src = new MongoClient(uriAs(source, ROOT_USER));
    dst = new MongoClient(uriAs(target, ROOT_USER));
  });
  after(async () => {
    await Promise.all([src.close(), dst.close()]);
    await Promise.all([source.stop(), target.stop()]);
  });

  test('custom roles recreated under the mapped database (inherited role first), users not', { timeout: 180_000 }, async () => {
    await src.db('bar').collection('products').insertMany([{ _id: 1 as never, n: 1 }, { _id: 2 as never, n: 2 }]);
    await src.db('bar').command({ createRole: 'productsReader', privileges: [{ resource: { db: 'bar', collection: 'products' }, actions: ['find'] }], roles: [] });
    await src.db('bar').command({ createRole: 'auditor', privileges: [{ resource: { db: 'bar', collection: '' }, actions: ['listCollections'] }], roles: [{ role: 'productsReader', db: 'bar' }, { role: 'read', db: 'bar' }] });
    await src.db('bar').command({ createUser: 'shop', pwd: 'shop-pw', roles: [{ role: 'auditor', db: 'bar' }] });

    const dataDir = mkdtempSync(join(tmpdir(), 'migrator-roles-'));
    const fm = spawnFullMigrate(uriAs(source, ROOT_USER), uriAs(target, ROOT_USER), dataDir, ['--include', 'bar.*', '--map', 'bar:bar_new', '--with-roles', '--migration-id', 'roles']);
    const store = await StateStore.open({ client: dst });
    try {
      await waitForPhase(store, 'roles', ['CATCHING_UP', 'READY_FOR_CUTOVER'], { proc: fm.proc, timeoutMs: 120_000, logTail: fm.tail });
      const line = await fm.waitFor(/custom roles on the target/, 10_000);
      assert.deepEqual(line.created, ['productsReader@bar_new', 'auditor@bar_new']);
    } finally {
      fm.proc.kill('SIGTERM');
      if (!(await waitGone(fm.proc.pid!, 30_000))) killQuietly(fm.proc.pid);
      await fm.proc;
    }
    const roles = await dst.db('bar_new').command({ rolesInfo: 1, showPrivileges: true });
    const byName = Object.fromEntries((roles.roles as { role: string; privileges: unknown; roles: unknown }[]).map((r) => [r.role, r]));
    assert.deepEqual(byName.productsReader!.privileges, [{ resource: { db: 'bar_new', collection: 'products' }, actions: ['find'] }]);
    assert.deepEqual(byName.auditor!.privileges, [{ resource: { db: 'bar_new', collection: '' }, actions: ['listCollections'] }]);
    assert.deepEqual(byName.auditor!.roles, [{ role: 'productsReader', db: 'bar_new' }, { role: 'read', db: 'bar_new' }]);
    assert.deepEqual((await dst.db('bar_new').command({ usersInfo: 1 })).users, [], 'users are never migrated');
  });

  test('a rerun changes nothing; a target role of the same name with another definition is not overwritten', async () => {
    const rules = new NamespaceRules({ map: ['bar:bar_new'] });
    const again = await recreateCustomRoles(src, dst, ['bar'], rules);
    assert.deepEqual(again, { created: [], existing: ['productsReader@bar_new', 'auditor@bar_new'] });
    await src.db('bar').command({ createRole: 'writer', privileges: [{ resource: { db: 'bar', collection: '' }, actions: ['insert'] }], roles: [] });
    await dst.db('bar_new').command({ createRole: 'writer', privileges: [{ resource: { db: 'bar_new', collection: '' }, actions: ['remove'] }], roles: [] });
    await assert.rejects(recreateCustomRoles(src, dst, ['bar'], rules), /role writer@bar_new already exists on the target with other privileges/);
  });
});
