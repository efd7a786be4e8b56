// The all-BSON-types sample document, shared by every test that checks BSON fidelity: the change
// envelope (test/model), the writer (test/apply) and the emulator's storage and dump/restore
// (packages/mongo-emulator/test). Values, types and field order must come back exactly.
import {
  Binary,
  BSONRegExp,
  BSONSymbol,
  Code,
  DBRef,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
  UUID,
  type Document,
} from 'mongodb';

/**
 * Every BSON type, as read with EXACT_BSON_OPTIONS (wrappers for Int32/Double, Long, …), with the
 * field names servers are picky about (`$dollarField`, `''`, `dotted.name`). `i` makes `_id` and
 * `str` distinct (documents of one collection, a unique index on `str`); i = 0 is the historical
 * sample (`_id` 65a1b2c3d4e5f60718293a4b).
 */
export function allTypesDocument(i = 0): Document {
  return {
    _id: new ObjectId((0x65a1b2c3d4e5f60718293a4bn + BigInt(i) * 0x100n).toString(16)),
    str: i === 0 ? 'héllo \u{1F600}' : `héllo \u{1F600} ${i}`,
    emptyStr: '',
    int32: new Int32(42),
    int32neg: new Int32(-2147483648),
    double: new Double(1), // a double that happens to be integral: must stay a double
    doubleFrac: new Double(3.25),
    negZero: new Double(-0),
    nan: new Double(Number.NaN),
    inf: new Double(Number.POSITIVE_INFINITY),
    long: Long.fromString('9223372036854775807'),
    longSmall: Long.fromInt(7), // a small long: must stay a long
    decimal: Decimal128.fromString('1234567890.123456789012345678901234'),
    decimalNeg: Decimal128.fromString('-0.00'),
    bool: true,
    boolF: false,
    nul: null,
    date: new Date('2024-02-29T12:34:56.789Z'),
    datePre1970: new Date(-86_400_000 * 365 * 100),
    ts: new Timestamp({ t: 1_700_000_000, i: 7 }),
    oid: new ObjectId(),
    binGeneric: new Binary(Buffer.from([0, 1, 2, 255]), 0),
    binFunction: new Binary(Buffer.from('fn'), 1),
    binOld: new Binary(Buffer.from('old-binary'), 2),
    binUuidOld: new Binary(Buffer.alloc(16, 3), 3),
    uuid: new UUID('0b7e2c1e-9f1a-4f3b-8c2d-1a2b3c4d5e6f'),
    binMd5: new Binary(Buffer.alloc(16, 5), 5),
    binEncrypted: new Binary(Buffer.from('enc'), 6),
    binColumn: new Binary(Buffer.from([1, 2, 3]), 7),
    binSensitive: new Binary(Buffer.from('secret'), 8),
    binVector: new Binary(Buffer.from([0x03, 0x00, 1, 2, 3]), 9),
    binUser: new Binary(Buffer.from('user'), 0x80),
    emptyBin: new Binary(Buffer.alloc(0), 0),
    regex: new BSONRegExp('^ab+c$', 'imsux'),
    code: new Code('function () { return 1; }'),
    codeWithScope: new Code('function () { return x; }', { x: new Int32(1) }),
    symbol: new BSONSymbol('sym'),
    minKey: new MinKey(),
    maxKey: new MaxKey(),
    dbref: new DBRef('other', new ObjectId('65a1b2c3d4e5f60718293a4c'), 'otherdb'),
    nested: {
      z: new Int32(1),
      a: new Double(2),
      m: { deep: [new Int32(1), new Double(1), Long.fromInt(1), 'one', { x: null }] },
    },
    arr: [new Int32(1), [new Int32(2), [new Int32(3)]], { k: 'v' }, [], {}],
    emptyDoc: {},
    'dotted.name': 'ok',
    $dollarField: 'ok',
    '': 'empty key',
  };
}

/**
 * {@link allTypesDocument} without the top-level names an insert is not accepted with everywhere
 * (`$`-prefixed and empty ones): what a test stores through the driver on any server.
 */
export function storableAllTypesDocument(i = 0): Document {
  const doc = allTypesDocument(i);
  delete doc.$dollarField;
  delete doc[''];
  return doc;
}
