/**
 * Secret redaction. Invariant: every byte the CLI writes (logs, reports, errors) passes through
 * `redactText`, which removes
 *  - the password part of any `scheme://user:password@host` connection string, and
 *  - every secret value registered with `registerSecret` (passwords parsed from configured URIs,
 *    AWS access keys and session tokens taken from the environment).
 */
const secrets = new Set<string>();

/** Shortest secret worth redacting by value: shorter strings would mangle ordinary text. */
const MIN_SECRET_LENGTH = 3;

export function registerSecret(value: string | undefined | null): void {
  if (!value || value.length < MIN_SECRET_LENGTH) return;
  secrets.add(value);
  // A password also appears percent-encoded inside URIs and decoded in driver messages.
  try {
    secrets.add(encodeURIComponent(value));
    secrets.add(decodeURIComponent(value));
  } catch {
    /* not valid percent-encoding: the raw value is registered already */
  }
}

/** Registers the password of a connection string (if any) as a secret. */
export function registerUriSecrets(uri: string | undefined): void {
  if (!uri) return;
  // A well-formed URI's userinfo ends at its first '@'; a password with an unescaped '@', '/', '?'
  // or '#' runs to the last '@', and the driver's error about it echoes pieces of it (between '@'s).
  for (const re of [/^[a-z][a-z0-9+.-]*:\/\/([^@/?#]*)@/i, /^[a-z][a-z0-9+.-]*:\/\/(\S*)@/i]) {
    const userinfo = re.exec(uri)?.[1];
    const colon = userinfo?.indexOf(':') ?? -1;
    if (userinfo === undefined || colon < 0) continue;
    const password = userinfo.slice(colon + 1);
    registerSecret(password);
    // After an unescaped '@' the driver reads the rest as host names, and prints them lowercased.
    password.split('@').forEach((piece, i) => {
      registerSecret(piece);
      if (i > 0) registerSecret(piece.toLowerCase());
    });
  }
}

/** Registers the AWS credentials found in the environment as secrets. */
export function registerEnvSecrets(env: NodeJS.ProcessEnv = process.env): void {
  for (const name of ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_ACCESS_KEY_ID']) {
    registerSecret(env[name]);
  }
}

// The password runs to the LAST '@' of the URI: a password with an unescaped '@', '/', '?' or '#'
// makes the connection string invalid, and the error that echoes it must not print the password.
const URI_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^:@/?#\s"']*):([^\s"']*)@/gi;

/** `mongodb://user:pw@host` → `mongodb://user:***@host`. */
export function redactUri(uri: string): string {
  return uri.replace(URI_PASSWORD, '$1:***@');
}

export function redactText(text: string): string {
  let out = redactUri(text);
  // Longest first, so a secret that contains another is removed whole.
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (out.includes(s)) out = out.split(s).join('***');
  }
  return out;
}

/** For tests: forget registered secrets. */
export function clearSecrets(): void {
  secrets.clear();
}
