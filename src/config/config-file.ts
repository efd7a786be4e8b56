import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { UsageError, errorMessage } from '../util/errors.js';
import { CONFIG_KEYS } from './options.js';

const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/**
 * Reads `--config FILE` (JSON or YAML; flat keys named like the flags, kebab- or camelCase).
 * Unknown keys are errors: a typo must not silently fall back to a default.
 */
export function readConfigFile(path: string, knownKeys: ReadonlySet<string> = CONFIG_KEYS): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'permission denied' : errorMessage(err);
    throw new UsageError(`Cannot read config file ${path}: ${why}.`, 'Pass --config with a readable JSON or YAML file.');
  }
  let data: unknown;
  try {
    data = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new UsageError(
      `Config file ${path} is not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${errorMessage(err).split('\n')[0]}`,
      'Fix the syntax; keys are the option names, e.g. "source-uri".',
    );
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new UsageError(`Config file ${path} must hold an object of option names to values.`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    const name = kebab(key);
    if (!knownKeys.has(name)) {
      throw new UsageError(
        `Config file ${path}: unknown option "${key}".`,
        `Valid keys: ${[...knownKeys].filter((k) => !k.includes('-') || k === k.toLowerCase()).sort().join(', ')}.`,
      );
    }
    out[name] = value;
  }
  return out;
}
