import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { createTargetViews, listSelectedViews } from '../../src/initial-load/views.js';
import { mapViewPipeline } from '../../src/db/compare-schema.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { createLogger } from '../../src/util/logger.js';

const lines: string[] = [];
const log = createLogger({ format: 'json', verbose: false, out: { write: (l: string) => lines.push(l) } as unknown as NodeJS.WritableStream });

/** The views of the selection, recreated on the target after the load (views.ts). */
describe('views on the target', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let src: MongoClient;
  let dst: MongoClient;
  const rules = new NamespaceRules({ map: ['bar.products:bar.items'] });
  const viewOf = async (db: string, name: string) => {
    const [info] = await dst.db(db).listCollections({ name }).toArray();
    return info as (Document & { type?: string; options?: Document }) | undefined;
  };
  before(async () => {
    [source, target] = await Promise.all([startMongoEmulator(), startMongoEmulator()]);
    src = new MongoClient(source.uri);
    dst = new MongoClient(target.uri);
    const bar = src.db('bar');
    await bar.collection('products').insertMany([{ _id: 1, price: 5 } as Document, { _id: 2, price: 50 }]);
    // Created in the "wrong" order by name: the view on the view sorts before its base.
    await bar.createCollection('cheap', { viewOn: 'products', pipeline: [{ $match: { price: { $lt: 10 } } }] });
    await bar.createCollection('acheapIds', { viewOn: 'cheap', pipeline: [{ $project: { _id: 1 } }] });
    await dst.db('bar').collection('items').insertMany([{ _id: 1, price: 5 } as Document, { _id: 2, price: 50 }]);
  });
  after(async () => {
    await Promise.all([src.close(), dst.close()]);
    await Promise.all([source.stop(), target.stop()]);
  });

  test('mapViewPipeline renames the collections $lookup, $graphLookup, $unionWith and sub-pipelines read', () => {
    const rename = (c: string) => (c === 'products' ? 'items' : c);
    assert.deepEqual(
      mapViewPipeline(
        [
          { $match: { from: 'products' } },
          { $lookup: { from: 'products', as: 'p', pipeline: [{ $unionWith: 'products' }] } },
          { $graphLookup: { from: 'products', startWith: '$a', connectFromField: 'a', connectToField: 'b', as: 'g' } },
          { $unionWith: { coll: 'orders', pipeline: [{ $lookup: { from: 'products', as: 'q' } }] } },
          { $facet: { x: [{ $unionWith: 'products' }] } },
        ],
        rename,
      ),
      [
        { $match: { from: 'products' } },
        { $lookup: { from: 'items', as: 'p', pipeline: [{ $unionWith: 'items' }] } },
        { $graphLookup: { from: 'items', startWith: '$a', connectFromField: 'a', connectToField: 'b', as: 'g' } },
        { $unionWith: { coll: 'orders', pipeline: [{ $lookup: { from: 'items', as: 'q' } }] } },
        { $facet: { x: [{ $unionWith: 'items' }] } },
      ],
    );
  });

  test('a view on a view comes after its base; viewOn follows --map', async () => {
    const views = await listSelectedViews(src, rules);
    assert.deepEqual(views.map((v) => [v.source, v.options.viewOn]), [['bar.cheap', 'items'], ['bar.acheapIds', 'cheap']]);
  });

  test('created once, left alone on a rerun; a different view of that name stops the load (exit 4) unless --drop', async () => {
    const first = await createTargetViews({ source: src, target: dst, rules, drop: false, log });
    assert.deepEqual(first, { created: ['bar.cheap', 'bar.acheapIds'], existing: [] });
    assert.deepEqual((await viewOf('bar', 'cheap'))?.options, { viewOn: 'items', pipeline: [{ $match: { price: { $lt: 10 } } }] });
    assert.deepEqual(await dst.db('bar').collection('acheapIds').find().toArray(), [{ _id: 1 }]);
    assert.ok(lines.some((l) => /"msg":"view created"/.test(l) && /bar\.acheapIds/.test(l)), lines.join('\n'));

    const again = await createTargetViews({ source: src, target: dst, rules, drop: false, log });
    assert.deepEqual(again, { created: [], existing: ['bar.cheap', 'bar.acheapIds'] });

    await dst.db('bar').collection('cheap').drop();
    await dst.db('bar').createCollection('cheap', { viewOn: 'items', pipeline: [] });
    await assert.rejects(createTargetViews({ source: src, target: dst, rules, drop: false, log }), (err: unknown) => {
      assert.ok(err instanceof MigratorError);
      assert.equal(err.exitCode, ExitCode.PREFLIGHT_FAILED);
      assert.match(err.message, /different view named bar\.cheap/);
      assert.match(err.hint ?? '', /--drop/);
      return true;
    });
    const replaced = await createTargetViews({ source: src, target: dst, rules, drop: true, log });
    assert.deepEqual(replaced, { created: ['bar.cheap'], existing: ['bar.acheapIds'] });
    assert.deepEqual((await viewOf('bar', 'cheap'))?.options?.pipeline, [{ $match: { price: { $lt: 10 } } }]);
  });
});
