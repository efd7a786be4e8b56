/**
 * Reading examples/ as their tools would: Compose files with .env interpolation and merge keys,
 * Kubernetes multi-document YAML, ECS task definitions, and the `migrator` command lines of a
 * GitHub Actions workflow's shell steps. Used by the examples' tests.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { PROJECT_ROOT } from '../support/cli.js';

export const EXAMPLES = join(PROJECT_ROOT, 'examples');
export const COMPOSE_DIR = join(EXAMPLES, 'compose');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Any = any;

/** A migrator invocation found in an example: its argv after `migrator` and its environment. */
export interface CommandLine {
  where: string;
  argv: string[];
  env: Record<string, string>;
  /** Variables of `env` that this very command must take (not merely some command). */
  ownEnv?: string[];
}

export function listFiles(dir = EXAMPLES): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? listFiles(p) : [p];
  });
}

export const rel = (p: string) => relative(PROJECT_ROOT, p);

/** `.env` syntax as Compose reads it: KEY=VALUE lines, # comments, optional quotes. */
export function readDotEnv(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m || line.trimStart().startsWith('#')) continue;
    out[m[1]!] = m[2]!.replace(/^(['"])(.*)\1$/, '$2');
  }
  return out;
}

/**
 * Compose's interpolation (https://docs.docker.com/reference/compose-file/interpolation/):
 * $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$ for a literal $.
 */
export function interpolate(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (all, name?: string, op?: string, arg?: string, bare?: string) => {
    if (all === '$$') return '$';
    const key = (name ?? bare)!;
    const value = vars[key];
    const unsetOrEmpty = value === undefined || value === '';
    switch (op) {
      case ':-':
        return unsetOrEmpty ? arg! : value!;
      case '-':
        return value === undefined ? arg! : value;
      case ':?':
      case '?':
        if (op === ':?' ? unsetOrEmpty : value === undefined) throw new Error(`required variable ${key} is missing: ${arg}`);
        return value!;
      default:
        return value ?? '';
    }
  });
}

function interpolateDeep(v: unknown, vars: Record<string, string>): unknown {
  if (typeof v === 'string') return interpolate(v, vars);
  if (Array.isArray(v)) return v.map((x) => interpolateDeep(x, vars));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, interpolateDeep(x, vars)]));
  return v;
}

/** The Compose file with merge keys resolved and every value interpolated from `vars`. */
export function loadCompose(vars: Record<string, string>): { services: Record<string, Any>; volumes?: Record<string, unknown> } {
  const raw = parseYaml(readFileSync(join(COMPOSE_DIR, 'docker-compose.yml'), 'utf8'), { merge: true }) as Any;
  return interpolateDeep(raw, vars) as Any;
}

/** Compose `environment:` as a map (it may be a list of KEY=VALUE). */
export function composeEnv(service: Any): Record<string, string> {
  const e = service.environment ?? {};
  if (Array.isArray(e)) return Object.fromEntries(e.map((kv: string) => [kv.split('=')[0], kv.slice(kv.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

export function loadKubernetes(): { file: string; doc: Any }[] {
  const dir = join(EXAMPLES, 'kubernetes');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => {
        if (d.errors.length) throw new Error(`${f}: ${d.errors[0]!.message}`);
        return { file: f, doc: d.toJS() as Any };
      }),
    )
    .filter((x) => x.doc);
}

export function loadEcsTasks(): { file: string; task: Any }[] {
  const dir = join(EXAMPLES, 'ecs');
  return readdirSync(dir)
    .filter((f) => f.endsWith('-task.json'))
    .map((f) => ({ file: f, task: JSON.parse(readFileSync(join(dir, f), 'utf8')) as Any }));
}

export function loadWorkflow(): Any {
  return parseYaml(readFileSync(join(EXAMPLES, 'github-actions', 'migrate.yml'), 'utf8')) as Any;
}

/** Splits one shell simple command into words: quotes, backslash escapes, $VAR / ${VAR} from `vars`. */
export function shellWords(text: string, vars: Record<string, string>): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  const expand = (): string => {
    const m = /^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/.exec(text.slice(i));
    if (!m) {
      i++;
      return '$';
    }
    i += m[0].length;
    const name = (m[1] ?? m[2])!;
    if (!(name in vars)) throw new Error(`\`${text}\`: $${name} is not set by the workflow`);
    return vars[name]!;
  };
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      i++;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      cur += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\') {
          cur += text[i + 1];
          i += 2;
        } else if (text[i] === '$') cur += expand();
        else cur += text[i++];
      }
      i++;
      inWord = true;
    } else if (c === '$') {
      cur += expand();
      inWord = true;
    } else if (c === '\\') {
      cur += text[i + 1] ?? '';
      i += 2;
      inWord = true;
    } else {
      cur += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/**
 * The `migrator …` commands of a shell script: `migrator` in command position (line start, after
 * `$(`, `;`, `&&`, `||`, `|`, `!`, `then`, `do`, `else`), up to the end of that simple command.
 * Backslash-newline continuations are joined first. Returns the raw text of each command.
 */
export function migratorCommandsIn(script: string): string[] {
  const joined = script.replace(/\\\n\s*/g, ' ');
  const out: string[] = [];
  const re = /(?:^|\$\(|;|&&|\|\||\||!|\bthen\b|\bdo\b|\belse\b)[ \t]*migrator[ \t]+/gm;
  for (let m = re.exec(joined); m; m = re.exec(joined)) {
    let i = m.index + m[0].length;
    let quote: string | undefined;
    let cmd = '';
    for (; i < joined.length; i++) {
      const c = joined[i]!;
      if (quote) {
        if (c === quote) quote = undefined;
      } else if (c === '"' || c === "'") quote = c;
      else if ('\n;|&)<>#'.includes(c)) break;
      cmd += c;
    }
    out.push(cmd.trim());
  }
  return out;
}

/** The GitHub expression `${{ … }}` as far as the examples use it: inputs' defaults, else a placeholder. */
export function githubExpr(value: string, inputs: Record<string, { default?: unknown }>): string {
  return value.replace(/\$\{\{\s*([^}]*?)\s*\}\}/g, (_a, expr: string) => {
    const m = /^inputs\.([A-Za-z0-9_-]+)$/.exec(expr);
    if (m && inputs[m[1]!]?.default !== undefined) return String(inputs[m[1]!]!.default);
    return 'placeholder';
  });
}

/** The Dockerfile's final-stage ENV (the container's environment before Compose adds its own). */
export function imageEnv(): Record<string, string> {
  const text = readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages = text.split(/^FROM /m);
  const env: Record<string, string> = {};
  for (const line of stages[stages.length - 1]!.split('\n')) {
    const m = /^ENV\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    for (const kv of m[1]!.trim().split(/\s+/)) {
      const [k, ...v] = kv.split('=');
      env[k!] = v.join('=');
    }
  }
  return env;
}

/** The image's user (`USER` of the final stage). */
export function imageUser(): string | undefined {
  const text = readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8');
  const stages = text.split(/^FROM /m);
  return /^USER\s+(\S+)/m.exec(stages[stages.length - 1]!)?.[1];
}
