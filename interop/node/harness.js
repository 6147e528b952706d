// Harness for the interop suites: starts bin/sqin (built beforehand by
// `make build`), on SQLite or on PostgreSQL, waits until it is ready,
// registers clients with its CLI, and stops it at the end.
//
// It builds nothing: a missing binary is an error that says what to run.

import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, openSync, closeSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

export const DEMO_PASSWORD = 'demo-password-2026';
export const demoUser = (n) => `citoyen${n}@demo.sqin.test`;
export const DEFAULT_POSTGRES = 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable';

/** Path of the server binary: $SQIN_BIN or ../../bin/sqin. */
export function binPath() {
  const p = process.env.SQIN_BIN || resolve(here, '..', '..', 'bin', 'sqin');
  if (!existsSync(p)) {
    throw new Error(`sqin binary not found at ${p}: run \`make build\` at the repository root first (or set SQIN_BIN)`);
  }
  return p;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Checks that PostgreSQL answers. Returns null when it does, or the reason
 * it does not.
 */
export async function postgresProblem(url = process.env.SQIN_TEST_POSTGRES || DEFAULT_POSTGRES) {
  try {
    await psql(url, 'SELECT 1');
    return null;
  } catch (e) {
    return e.message;
  }
}

async function psql(url, sql) {
  try {
    await execFileP('psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], { timeout: 15000 });
  } catch (e) {
    throw new Error(`psql ${JSON.stringify(sql)}: ${(e.stderr || e.message).toString().trim()}`);
  }
}

function withParam(url, key, value) {
  return url + (url.includes('?') ? '&' : '?') + `${key}=${encodeURIComponent(value)}`;
}

/**
 * A running sqin server. Use `await Server.start({ backend })`, then
 * `await server.stop()`.
 */
export class Server {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'sqin-interop-'));
    this.logFile = join(this.dir, 'server.log');
    this.proc = null;
    this.schema = null;
    this.pgBase = null;
  }

  static async start({ backend = 'sqlite' } = {}) {
    const s = new Server();
    try {
      s.bin = binPath();
      if (backend === 'postgres') {
        s.pgBase = process.env.SQIN_TEST_POSTGRES || DEFAULT_POSTGRES;
        s.schema = 'interop_node_' + randomBytes(6).toString('hex');
        await psql(s.pgBase, `CREATE SCHEMA ${s.schema}`);
        s.db = withParam(s.pgBase, 'search_path', s.schema);
      } else {
        s.db = 'sqlite://' + join(s.dir, 'sqin.db');
      }
      s.port = await freePort();
      s.issuer = `http://127.0.0.1:${s.port}`;
      await s.launch();
      return s;
    } catch (e) {
      await s.stop();
      throw e;
    }
  }

  async launch() {
    const out = openSync(this.logFile, 'a');
    const args = ['serve', '--demo', '--db', this.db, '--addr', `127.0.0.1:${this.port}`,
      '--issuer', this.issuer, '--demo-rp-addr', '', '--demo-users', '3'];
    // The demo keeps its generated secrets in ./sqin-data: run in our own directory.
    this.proc = spawn(this.bin, args, { stdio: ['ignore', out, out], cwd: this.dir });
    closeSync(out);
    const proc = this.proc;
    this.exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    let status = 'no answer';
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`sqin serve exited (${proc.exitCode ?? proc.signalCode}) before it was ready:\n${this.logTail()}`);
      }
      try {
        const r = await fetch(`${this.issuer}/readyz`, { signal: AbortSignal.timeout(2000) });
        status = `${r.status} ${await r.text()}`;
        if (r.status === 200) return;
      } catch (e) {
        status = e.cause?.code || e.message;
      }
      await sleep(100);
    }
    throw new Error(`sqin serve not ready after 30s (last /readyz: ${status}):\n${this.logTail()}`);
  }

  /** The last lines the server wrote, for failure messages. */
  logTail(n = 40) {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
    } catch {
      return '(no server log)';
    }
  }

  /**
   * Registers a client with `sqin client create` and returns the JSON the
   * CLI printed. jwksFile: public keys for private_key_jwt; flags: further
   * CLI flags as given.
   */
  async createClient({ id, secret, redirectUris = [], postLogoutRedirectUris = [], grantTypes, auth, scopes, minLoa, jwksFile, sector, flags = [] }) {
    const args = ['client', 'create', '--db', this.db, '--id', id];
    if (secret) args.push('--secret', secret);
    for (const u of redirectUris) args.push('--redirect-uri', u);
    for (const u of postLogoutRedirectUris) args.push('--post-logout-redirect-uri', u);
    if (grantTypes) args.push('--grant-types', grantTypes.join(','));
    if (auth) args.push('--auth', auth);
    if (scopes) args.push('--scopes', scopes.join(','));
    if (minLoa) args.push('--min-loa', String(minLoa));
    if (jwksFile) args.push('--jwks-file', jwksFile);
    if (sector) args.push('--sector', sector);
    args.push(...flags);
    let stdout;
    try {
      ({ stdout } = await execFileP(this.bin, args, { timeout: 30000, cwd: this.dir }));
    } catch (e) {
      throw new Error(`sqin ${args.join(' ')} failed: ${e.message}\n${e.stdout || ''}${e.stderr || ''}`);
    }
    try {
      return JSON.parse(stdout);
    } catch {
      throw new Error(`sqin client create printed no JSON: ${stdout}`);
    }
  }

  /** Stops the server (SIGTERM, then SIGKILL after 10 s) and cleans up. */
  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
      await this.exited;
      clearTimeout(t);
    }
    if (this.schema) {
      try {
        await psql(this.pgBase, `DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
      } catch (e) {
        console.error(`# could not drop schema ${this.schema}: ${e.message}`);
      }
      this.schema = null;
    }
    if (process.env.SQIN_KEEP_LOGS) {
      console.error(`# server log kept in ${this.logFile}`);
    } else {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
