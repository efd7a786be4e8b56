import { execa } from 'execa';
import { MigratorError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';

export interface ToolBinaries {
  mongodump: string;
  mongorestore: string;
}

export interface ToolVersions {
  mongodump: string;
  mongorestore: string;
}

/** Binaries from --mongodump-path / --mongorestore-path (MIGRATOR_MONGODUMP_PATH, …), else from PATH. */
export function toolBinaries(paths: { mongodump?: string; mongorestore?: string } = {}): ToolBinaries {
  return {
    mongodump: paths.mongodump || 'mongodump',
    mongorestore: paths.mongorestore || 'mongorestore',
  };
}

/** Runs `<tool> --version`; fails with TOOL_FAILED and how to install it when missing. */
export async function toolVersions(bins: ToolBinaries): Promise<ToolVersions> {
  const one = async (name: keyof ToolBinaries) => {
    const r = await execa(bins[name], ['--version'], { reject: false, timeout: 15_000 });
    if (r.failed || r.exitCode !== 0) {
      throw new MigratorError(ExitCode.TOOL_FAILED, `${name} is not usable at "${bins[name]}": ${r.shortMessage ?? 'no output'}.`, {
        hint: `Install the MongoDB Database Tools (the migrator image has them), or point --${name}-path at the binary.`,
      });
    }
    const m = /version:?\s*(\S+)/i.exec(String(r.stdout));
    return m ? m[1]! : String(r.stdout).split('\n')[0]!.trim();
  };
  return { mongodump: await one('mongodump'), mongorestore: await one('mongorestore') };
}
