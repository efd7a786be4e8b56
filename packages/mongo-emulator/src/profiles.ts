// Server profiles: which documented server the emulator presents. Every difference between
// profiles is a documented behaviour of that server, cited next to the code that enforces it
// (here for the flags, in the command handlers for the behaviour). Where the documentation is
// silent, a profile takes the *less* convenient answer, so code that passes on it is right on the
// real server either way; such choices say "undocumented" in their comment.
//
// Handlers read `ctx.server.profile` (see command-context.ts); nothing else decides behaviour by
// version or flavor.

export const PROFILE_NAMES = [
  'mongodb-4.4',
  'mongodb-5.0',
  'mongodb-6.0',
  'mongodb-7.0',
  'mongodb-8.0',
  'documentdb-4.0',
  'documentdb-5.0',
] as const;

export type ProfileName = (typeof PROFILE_NAMES)[number];

export interface EmulatorProfile {
  readonly name: ProfileName;
  readonly flavor: 'mongodb' | 'documentdb';
  /** `buildInfo.version` (DocumentDB reports the MongoDB API version it implements). */
  readonly version: string;
  /** `hello.maxWireVersion`. https://www.mongodb.com/docs/manual/reference/command/hello/ */
  readonly maxWireVersion: number;
  /** `featureCompatibilityVersion` reported by getParameter (MongoDB only). */
  readonly fcv?: string;
  /**
   * setUserWriteBlockMode and the bypassWriteBlockingMode privilege (MongoDB 6.0+; "New in version
   * 6.0": https://www.mongodb.com/docs/manual/reference/command/setUserWriteBlockMode/). Absent:
   * the command is CommandNotFound (59). DocumentDB does not list it among its supported commands
   * (https://docs.aws.amazon.com/documentdb/latest/developerguide/mongo-apis.html).
   */
  readonly writeBlocking: boolean;
}

const mongodb = (version: string, maxWireVersion: number): EmulatorProfile => ({
  name: `mongodb-${version.split('.').slice(0, 2).join('.')}` as ProfileName,
  flavor: 'mongodb',
  version,
  maxWireVersion,
  fcv: version.split('.').slice(0, 2).join('.'),
  writeBlocking: Number(version.split('.')[0]) >= 6,
});

const documentdb = (api: '4.0' | '5.0', maxWireVersion: number): EmulatorProfile => ({
  name: `documentdb-${api}`,
  flavor: 'documentdb',
  version: `${api}.0`,
  maxWireVersion,
  writeBlocking: false,
});

/**
 * Wire versions: https://github.com/mongodb/specifications/blob/master/source/wireversion-featurelist/wireversion-featurelist.md
 * (4.4 → 9, 5.0 → 13, 6.0 → 17, 7.0 → 21, 8.0 → 25). DocumentDB answers `hello` with the wire
 * version of the MongoDB API it implements (4.0 → 7, 5.0 → 13).
 */
export const PROFILES: Readonly<Record<ProfileName, EmulatorProfile>> = {
  'mongodb-4.4': mongodb('4.4.29', 9),
  'mongodb-5.0': mongodb('5.0.30', 13),
  'mongodb-6.0': mongodb('6.0.19', 17),
  'mongodb-7.0': mongodb('7.0.14', 21),
  'mongodb-8.0': mongodb('8.0.4', 25),
  'documentdb-4.0': documentdb('4.0', 7),
  'documentdb-5.0': documentdb('5.0', 13),
};

export const DEFAULT_PROFILE: ProfileName = 'mongodb-7.0';

/** The profile of a name; throws naming the valid ones. */
export function profileByName(name: string | undefined): EmulatorProfile {
  const key = (name ?? DEFAULT_PROFILE) as ProfileName;
  const p = PROFILES[key];
  if (!p) throw new Error(`unknown emulator profile '${name}'; one of: ${PROFILE_NAMES.join(', ')}`);
  return p;
}

/** major.minor of a profile as a number (6.0 → 6, 4.4 → 4.4) for "from version X" checks. */
export function versionAtLeast(profile: EmulatorProfile, major: number, minor = 0): boolean {
  const [a = 0, b = 0] = profile.version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

/** major.minor.patch at least (6.0.9 → `versionAtLeastPatch(p, 6, 0, 9)`). */
function versionAtLeastPatch(profile: EmulatorProfile, major: number, minor: number, patch: number): boolean {
  const [a = 0, b = 0, c = 0] = profile.version.split('.').map(Number);
  return a !== major || b !== minor ? versionAtLeast(profile, major, minor) : c >= patch;
}

/**
 * `$changeStreamSplitLargeEvent`: "New in MongoDB 7.0 (and 6.0.9)"
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/changeStreamSplitLargeEvent/
 * (the mongodb-6.0 profile is 6.0.19, so it has it; 4.4 and 5.0 do not).
 */
export function hasSplitLargeEvent(p: EmulatorProfile): boolean {
  return p.flavor === 'mongodb' && (versionAtLeast(p, 7) || (versionAtLeast(p, 6) && versionAtLeastPatch(p, 6, 0, 9)));
}

/**
 * `showExpandedEvents` ($changeStream option, "New in version 6.0"):
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/changeStream/ and the expanded
 * events (create, createIndexes, dropIndexes, modify, shardCollection…):
 * https://www.mongodb.com/docs/manual/reference/change-events/
 */
export function hasExpandedEvents(p: EmulatorProfile): boolean {
  return p.flavor === 'mongodb' && versionAtLeast(p, 6);
}

/**
 * `wallTime` in change events: "New in version 6.0" on every event page of
 * https://www.mongodb.com/docs/manual/reference/change-events/ (absent in 4.4 and 5.0).
 * DocumentDB does not list it (undocumented → absent, the less convenient answer).
 */
export function hasEventWallTime(p: EmulatorProfile): boolean {
  return p.flavor === 'mongodb' && versionAtLeast(p, 6);
}

/**
 * 16 MiB limit on change events: "If a change stream has large events that exceed 16 MB, a
 * BSONObjectTooLarge exception is returned"
 * (https://www.mongodb.com/docs/manual/reference/operator/aggregation/changeStreamSplitLargeEvent/);
 * the limit is the maximum BSON document size (https://www.mongodb.com/docs/manual/reference/limits/).
 * Enforced on every MongoDB profile.
 */
export function limitsChangeEventSize(p: EmulatorProfile): boolean {
  return p.flavor === 'mongodb';
}
