// Redaction of passwords that make a connection string invalid (unescaped '@', ':', '/', '?', '#'):
// the driver's error echoes the URI or pieces of it, so every piece must go.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clearSecrets, redactText, redactUri, registerUriSecrets } from '../../src/util/redact.js';

test('the password runs to the last @ of a URI', () => {
  assert.equal(redactUri('mongodb://admin:pa@ss:word@127.0.0.1:9'), 'mongodb://admin:***@127.0.0.1:9');
  assert.equal(redactUri('mongodb://admin:ab/cdSECRET@127.0.0.1:9/?tls=true'), 'mongodb://admin:***@127.0.0.1:9/?tls=true');
  assert.equal(redactUri('mongodb://admin:ab?cd#SECRET@h1,h2/db'), 'mongodb://admin:***@h1,h2/db');
  // Well-formed URIs, and several in one line, keep users and hosts.
  assert.equal(redactUri('mongodb://bob:pa55w0rd@db1:27017,db2/?tls=true'), 'mongodb://bob:***@db1:27017,db2/?tls=true');
  assert.equal(redactUri('from mongodb://a:x1@h1 to mongodb://b:y2@h2'), 'from mongodb://a:***@h1 to mongodb://b:***@h2');
  assert.equal(redactUri('{"uri":"mongodb://a:x1@h1","note":"mail me@example.com"}'), '{"uri":"mongodb://a:***@h1","note":"mail me@example.com"}');
  assert.equal(redactUri('mongodb://host:27017/db'), 'mongodb://host:27017/db');
});

test('pieces of such a password in driver messages are removed, also lowercased host names', () => {
  clearSecrets();
  registerUriSecrets('mongodb://admin:Pa55@w0rd:Xyz@127.0.0.1:1');
  assert.equal(redactText('Unable to parse w0rd:Xyz@127.0.0.1:1 with URL'), 'Unable to parse ***@127.0.0.1:1 with URL');
  clearSecrets();
  registerUriSecrets('mongodb://admin:Pa55@HostLikePiece@127.0.0.1:1');
  assert.equal(redactText('getaddrinfo ENOTFOUND hostlikepiece'), 'getaddrinfo ENOTFOUND ***');
  assert.equal(redactText('password Pa55@HostLikePiece'), 'password ***');
  clearSecrets();
  registerUriSecrets('mongodb://admin:ab%2FcdS3cret@127.0.0.1:1');
  assert.equal(redactText('auth failed for ab/cdS3cret'), 'auth failed for ***');
  clearSecrets();
});
