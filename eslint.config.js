import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import migrator from './scripts/eslint/layers.js';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.tools/', 'migrator-data/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { migrator },
    rules: {
      'migrator/layers': 'error',
      // Small modules and functions (issue #15): counted without blank lines and comments, so the
      // invariant comments next to the code they guard cost nothing.
      'max-lines': ['error', { max: 500, skipBlankLines: true, skipComments: true }],
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
    },
  },
);
