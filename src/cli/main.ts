#!/usr/bin/env node
import { runCli } from './run.js';

// The AWS SDK warns on every start under Node 20 that future releases need Node 22: noise for a
// CLI whose image runs the current LTS. Every other warning is still printed.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const text = typeof warning === 'string' ? warning : warning.message;
  if (/NodeVersionSupportWarning|AWS SDK for JavaScript \(v3\)/.test(text) || rest.includes('NodeVersionSupportWarning')) return;
  (emitWarning as (...a: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

process.exitCode = await runCli(process.argv.slice(2));
