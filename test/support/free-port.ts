/**
 * A TCP port that was free on 127.0.0.1 a moment ago: bind 127.0.0.1:0, read the port, close.
 * Another process can grab it before the caller binds it; callers that start servers should be
 * ready to retry on EADDRINUSE. The same function the embedded kinesis-local launcher uses.
 */
export { freeLoopbackPort as freePort } from '../../src/transport/kinesis-local-launcher.js';
