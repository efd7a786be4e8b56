import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clearSecrets, redactText, redactUri, registerEnvSecrets, registerUriSecrets } from '../../src/util/redact.js';

test('passwords in connection strings are replaced, users and hosts kept', () => {
  assert.equal(redactUri('mongodb://bob:pa55w0rd@db1:27017,db2/?tls=true'), 'mongodb://bob:***@db1:27017,db2/?tls=true');
  assert.equal(redactUri('mongodb+srv://a:b%40c@cluster.example.net'), 'mongodb+srv://a:***@cluster.example.net');
  assert.equal(redactUri('mongodb://host:27017/db'), 'mongodb://host:27017/db');
});

test('registered secrets disappear from any text, also percent-decoded', () => {
  clearSecrets();
  registerUriSecrets('mongodb://bob:p%40ss%3Aword@db');
  const text = 'auth failed for p@ss:word and p%40ss%3Aword';
  assert.equal(redactText(text).includes('p@ss:word'), false);
  assert.equal(redactText(text).includes('p%40ss%3Aword'), false);
});

test('AWS keys from the environment are never printed', () => {
  clearSecrets();
  registerEnvSecrets({ AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG', AWS_ACCESS_KEY_ID: 'AKIAEXAMPLEKEY' });
  assert.equal(redactText('key AKIAEXAMPLEKEY secret wJalrXUtnFEMI/K7MDENG'), 'key *** secret ***');
});
