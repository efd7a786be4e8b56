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

/** Binaries from MIGRATOR_MONGODUMP / MIGRATOR_MONGORESTORE, else from PATH. */
export function toolBinaries(env: NodeJS.ProcessEnv = process.env): ToolBinaries {
  return {
    mongodump: env.MIGRATOR_MONGODUMP || 'mongodump',
    mongorestore: env.MIGRATOR_MONGORESTORE || 'mongorestore',
  };
}

/** Runs `<tool> --version`; fails with TOOL_FAILED and how to install it when missing. */
export async function toolVersions(bins: ToolBinaries): Promise<ToolVersions> {
  const one = async (name: keyof ToolBinaries) => {
    const r = await execa(bins[name], ['--version'], { reject: false, timeout: 15_000 });
    if (r.failed || r.exitCode !== 0) {
      throw new MigratorError(ExitCode.TOOL_FAILED, `${name} is not usable at "${bins[name]}": ${r.shortMessage ?? 'no output'}.`, {
        hint: `Install the MongoDB Database Tools (the migrator image has them), or point MIGRATOR_${name.toUpperCase()} at the binary.`,
      });
    }
    const m = /version:?\s*(\S+)/i.exec(String(r.stdout));
    return m ? m[1]! : String(r.stdout).split('\n')[0]!.trim();
  };
  return { mongodump: await one('mongodump'), mongorestore: await one('mongorestore') };
}
