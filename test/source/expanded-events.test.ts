// Expanded change events in capture (src/source/expanded-events.ts): which sources have them, and
// the create event completed with the collection's options read from the source.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoClient, type ChangeStreamDocument, type Document } from 'mongodb';
import { EXACT_BSON_OPTIONS } from '../../src/model/change-envelope.js';
import { expandedEventsSupported, isExpandedEventsRefused, withCreateOptions } from '../../src/source/expanded-events.js';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';

describe('expanded events', () => {
  it('are asked for from MongoDB 6.0 on; a refusal (unknown field 40415) turns them off', () => {
    assert.equal(expandedEventsSupported('5.0.30'), false);
    assert.equal(expandedEventsSupported('4.0.0'), false); // DocumentDB reports its API version
    assert.equal(expandedEventsSupported('6.0.19'), true);
    assert.equal(expandedEventsSupported('8.0.4'), true);
    assert.equal(expandedEventsSupported(''), false);
    assert.equal(isExpandedEventsRefused(40415, "BSON field '$changeStream.showExpandedEvents' is an unknown field."), true);
    assert.equal(isExpandedEventsRefused(undefined, 'Unrecognized change stream option showExpandedEvents'), true);
    assert.equal(isExpandedEventsRefused(6, 'host unreachable'), false);
  });

  describe('withCreateOptions', () => {
    let emu: MongoEmulator;
    let client: MongoClient;
    before(async () => {
      emu = await startMongoEmulator({ profile: 'mongodb-7.0' });
      client = new MongoClient(emu.uri);
    });
    after(async () => {
      await client.close();
      await emu.stop();
    });

    async function createEvents(run: () => Promise<void>, n: number): Promise<Document[]> {
      const stream = client.db('t').watch([{ $match: { operationType: 'create' } }], { showExpandedEvents: true, maxAwaitTimeMS: 100, ...EXACT_BSON_OPTIONS });
      await stream.tryNext(); // opened
      await run();
      const out: Document[] = [];
      while (out.length < n) {
        const e = (await stream.tryNext()) as ChangeStreamDocument | null;
        if (e) out.push(e as Document);
      }
      await stream.close();
      return out;
    }

    it('adds the options of the collection the event is about (same collectionUUID)', async () => {
      const [ev] = await createEvents(() => client.db('t').createCollection('fr', { collation: { locale: 'fr' }, validator: { n: { $type: 'int' } } }).then(() => undefined), 1);
      const done = await withCreateOptions(client, ev!);
      assert.equal((done.operationDescription.collation as Document).locale, 'fr');
      assert.deepEqual(done.operationDescription.validator, { n: { $type: 'int' } });
      assert.ok(done.operationDescription.idIndex, 'the event\'s own description is kept');
    });

    it('leaves the event alone when the collection was dropped and created again since, or when the event has options', async () => {
      const [ev] = await createEvents(() => client.db('t').createCollection('again').then(() => undefined), 1);
      await client.db('t').collection('again').drop();
      await client.db('t').createCollection('again', { collation: { locale: 'de' } });
      assert.deepEqual(await withCreateOptions(client, ev!), ev);
      const withOptions = { ...ev!, operationDescription: { idIndex: { v: 2, key: { _id: 1 }, name: '_id_' }, capped: true, size: 4096 } };
      assert.deepEqual(await withCreateOptions(client, withOptions), withOptions);
      await client.db('t').collection('again').drop();
      assert.deepEqual(await withCreateOptions(client, ev!), ev, 'gone: as the event says');
    });
  });
});
