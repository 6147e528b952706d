// The security profile with unmodified third-party clients: openid-client
// and oauth4webapi sign in with PAR (RFC 9126) + DPoP (RFC 9449) +
// private_key_jwt (RFC 7523), each with its own DPoP code path, and a
// client of the FAPI 2.0 profile is refused every weaker option. Run once
// per storage backend by security-sqlite.test.js and
// security-postgres.test.js.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, webcrypto } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import * as client from 'openid-client';
import * as oauth from 'oauth4webapi';
import { Server, DEMO_PASSWORD, demoUser } from './harness.js';
import { Browser } from './browser.js';

const require = createRequire(import.meta.url);
const versionOf = (pkg) => JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')).version;

const REDIRECT = 'https://rp.example/callback';
const SCOPES = ['openid', 'profile', 'email', 'offline_access'];
const GRANTS = ['authorization_code', 'refresh_token', 'client_credentials'];
const REQUEST_URI = 'urn:ietf:params:oauth:request_uri:';

const b64u = (buf) => Buffer.from(buf).toString('base64url');

/** The payload of a JWT, unverified. */
function jwtPayload(jwt) {
  const parts = String(jwt).split('.');
  assert.equal(parts.length, 3, `not a JWT: ${String(jwt).slice(0, 20)}…`);
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

/**
 * RFC 7638 SHA-256 thumbprint of an EC public key, computed here rather
 * than by the client libraries under test.
 */
async function thumbprint(publicKey) {
  const jwk = await webcrypto.subtle.exportKey('jwk', publicKey);
  assert.equal(jwk.kty, 'EC');
  const canon = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return b64u(createHash('sha256').update(canon).digest());
}

/**
 * A P-256 client key pair with a kid, its public half written as a JWKS
 * file for `sqin client create --jwks-file`.
 */
async function clientKey(dir, kid) {
  const { privateKey, publicKey } = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const { kty, crv, x, y } = await webcrypto.subtle.exportKey('jwk', publicKey);
  const file = join(dir, `jwks-${kid}.json`);
  writeFileSync(file, JSON.stringify({ keys: [{ kty, crv, x, y, kid, use: 'sig', alg: 'ES256' }] }));
  return { privateKey, kid, file };
}

/**
 * Asserts that promise rejects with OAuth error code `code` (or one of
 * several, given as an array): in the error
 * response body, in the authorization response, or, when the libraries
 * report a 401 as a WWW-Authenticate challenge (RFC 6749 5.2: Basic
 * clients get one), in the challenge or the body that came with it.
 */
async function rejectsWith(promise, code, what) {
  let err;
  await assert.rejects(promise, (e) => { err = e; return true; }, `${what}: expected error ${code}, it succeeded`);
  let got = err?.error ?? err?.cause?.error;
  let body = '';
  if (got === undefined && err instanceof client.WWWAuthenticateChallengeError) {
    got = err.cause.find((ch) => ch.parameters.error)?.parameters.error;
    try {
      body = await err.response.clone().text();
      got ??= JSON.parse(body).error;
    } catch { /* no JSON body */ }
  }
  const codes = [code].flat();
  assert.ok(codes.includes(got ?? err?.code), `${what}: expected error ${codes.join(' or ')}, got ${err?.name}: ${err?.message} ` +
    `${JSON.stringify(err?.cause ?? {})} (status ${err?.status ?? err?.response?.status}) ${body}`);
  return err;
}

/**
 * A fetch that records every request the libraries make (method, URL,
 * whether a DPoP proof was attached, status, error), for assertions and
 * failure messages.
 */
function recorder() {
  const trail = [];
  const f = async (url, options) => {
    const res = await fetch(url, options);
    const entry = { method: options?.method ?? 'GET', url: String(url), dpop: !!new Headers(options?.headers).get('dpop'), status: res.status };
    if (res.status >= 400) {
      try { entry.error = (await res.clone().json()).error; } catch { /* not JSON */ }
      const www = res.headers.get('www-authenticate');
      if (www) entry.error = entry.error ?? /error="([^"]+)"/.exec(www)?.[1];
    }
    trail.push(entry);
    return res;
  };
  f.trail = trail;
  f.show = () => trail.map((e) => `${e.method} ${new URL(e.url).pathname}${e.dpop ? ' +DPoP' : ''} -> ${e.status}${e.error ? ' ' + e.error : ''}`).join(' | ');
  return f;
}

/** Follows an authorization URL through the sign-in pages to the callback. */
async function browse(url, user) {
  return new Browser().navigate(url, REDIRECT, { username: demoUser(user), password: DEMO_PASSWORD });
}

export function securitySuite(backend, { skip = false } = {}) {
  describe(`security profile against sqin on ${backend} (openid-client ${versionOf('openid-client')}, oauth4webapi ${versionOf('oauth4webapi')})`, { skip }, () => {
    let server;
    let issuer;

    before(async () => {
      server = await Server.start({ backend });
      issuer = new URL(server.issuer);
    });

    after(async () => {
      if (server) await server.stop();
    });

    /** Registers a private_key_jwt client; returns { id, key }. */
    async function keyClient(prefix, flags = []) {
      const id = `${prefix}-${Math.random().toString(16).slice(2, 8)}`;
      const key = await clientKey(server.dir, id);
      await server.createClient({
        id, redirectUris: [REDIRECT], grantTypes: GRANTS, auth: 'private_key_jwt', scopes: SCOPES,
        jwksFile: key.file, flags,
      });
      return { id, key };
    }

    /** openid-client Configuration for a private_key_jwt client, recording its requests. */
    async function openidConfig(c, auth = client.PrivateKeyJwt({ key: c.key.privateKey, kid: c.key.kid })) {
      const rec = recorder();
      const config = await client.discovery(issuer, c.id, undefined, auth, { execute: [client.allowInsecureRequests] });
      config[client.customFetch] = rec;
      client.enableNonRepudiationChecks(config);
      return { config, rec };
    }

    async function authParams(extra = {}) {
      const verifier = client.randomPKCECodeVerifier();
      return {
        verifier, state: client.randomState(), nonce: client.randomNonce(),
        params: {
          redirect_uri: REDIRECT, scope: 'openid email offline_access',
          code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...extra,
        },
      };
    }

    describe('openid-client: PAR + DPoP + private_key_jwt', () => {
      let c;
      let config;
      let rec;

      before(async () => {
        c = await keyClient('node-oc-dpop');
        ({ config, rec } = await openidConfig(c));
      });

      it('discovers PAR and DPoP support', () => {
        const md = config.serverMetadata();
        assert.equal(md.pushed_authorization_request_endpoint, server.issuer + '/par');
        assert.ok(md.dpop_signing_alg_values_supported?.includes('ES256'), `dpop_signing_alg_values_supported ${md.dpop_signing_alg_values_supported}`);
        assert.ok(md.token_endpoint_auth_methods_supported?.includes('private_key_jwt'), 'private_key_jwt advertised');
        assert.equal(md.authorization_response_iss_parameter_supported, true, 'iss in the authorization response (RFC 9207)');
      });

      it('signs in, calls userinfo with DPoP and refreshes a DPoP-bound token', async () => {
        const keyPair = await client.randomDPoPKeyPair();
        const jkt = await thumbprint(keyPair.publicKey);
        const DPoP = client.getDPoPHandle(config, keyPair);
        const { verifier, state, nonce, params } = await authParams();
        const url = await client.buildAuthorizationUrlWithPAR(config, { ...params, state, nonce }, { DPoP });
        assert.deepEqual([...url.searchParams.keys()].sort(), ['client_id', 'request_uri'], `front-channel URL ${url}`);
        assert.ok(url.searchParams.get('request_uri').startsWith(REQUEST_URI), `request_uri ${url}`);
        const par = rec.trail.filter((e) => e.url.endsWith('/par'));
        assert.ok(par.length === 2 && par[0].status === 400 && par[0].error === 'use_dpop_nonce' && par[1].status === 201,
          `PAR: the server asks for a nonce, the library retries (RFC 9449 8): ${rec.show()}`);

        const cb = await browse(url, 1);
        assert.equal(cb.searchParams.get('iss'), server.issuer, `iss in the callback ${cb}`);
        const tokens = await client.authorizationCodeGrant(config, cb, {
          pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
        }, undefined, { DPoP });
        assert.equal(tokens.token_type.toLowerCase(), 'dpop', `token_type ${tokens.token_type}`);
        assert.equal(jwtPayload(tokens.access_token).cnf?.jkt, jkt, 'access token cnf.jkt = thumbprint of the DPoP key');
        const claims = tokens.claims();
        assert.equal(claims.iss, server.issuer);
        assert.ok(tokens.refresh_token, 'refresh token with offline_access');

        const ui = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP });
        assert.equal(ui.sub, claims.sub);
        assert.equal(ui.email, demoUser(1));
        const lastUI = rec.trail.filter((e) => e.url.endsWith('/userinfo')).at(-1);
        assert.ok(lastUI.dpop && lastUI.status === 200, `userinfo sent with a DPoP proof: ${rec.show()}`);

        // The bound token is worthless without its proof (RFC 9449 7.2).
        let err;
        await assert.rejects(client.fetchUserInfo(config, tokens.access_token, claims.sub), (e) => { err = e; return true; },
          'DPoP-bound access token accepted as a bearer token');
        assert.ok(err instanceof client.WWWAuthenticateChallengeError, `${err}`);
        assert.ok(err.cause.some((ch) => ch.parameters.error === 'invalid_token'), `challenge ${JSON.stringify(err.cause)}`);

        const r1 = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
        assert.equal(r1.token_type.toLowerCase(), 'dpop', `refreshed token_type ${r1.token_type}`);
        assert.notEqual(r1.access_token, tokens.access_token);
        assert.equal(jwtPayload(r1.access_token).cnf?.jkt, jkt, 'refreshed access token bound to the same key');
        const ui2 = await client.fetchUserInfo(config, r1.access_token, claims.sub, { DPoP });
        assert.equal(ui2.sub, claims.sub);

        // A proof by another key does not go with this token.
        const other = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
        await assert.rejects(client.fetchUserInfo(config, r1.access_token, claims.sub, { DPoP: other }),
          (e) => e instanceof client.WWWAuthenticateChallengeError && e.cause.some((ch) => ch.parameters.error === 'invalid_dpop_proof'),
          'userinfo with a proof by another key');
      });

      it('binds the authorization code with dpop_jkt: exchange with another key fails', async () => {
        const keyPair = await client.randomDPoPKeyPair();
        const DPoP = client.getDPoPHandle(config, keyPair);
        const { verifier, state, nonce, params } = await authParams();
        const url = await client.buildAuthorizationUrlWithPAR(config, { ...params, state, nonce, dpop_jkt: await thumbprint(keyPair.publicKey) });
        const cb = await browse(url, 2);
        const thief = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
        // RFC 9449 10 says reject, not with which code: either is right.
        const err = await rejectsWith(client.authorizationCodeGrant(config, cb, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce },
          undefined, { DPoP: thief }), ['invalid_grant', 'invalid_dpop_proof'], 'code bound by dpop_jkt, exchanged with a proof by another key (RFC 9449 10)');
        assert.equal(err.status, 400);
        const tokens = await client.authorizationCodeGrant(config, cb, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, undefined, { DPoP });
        assert.equal(jwtPayload(tokens.access_token).cnf?.jkt, await thumbprint(keyPair.publicKey));
      });
    });

    describe('oauth4webapi: PAR + its own DPoP + private_key_jwt', () => {
      let c;
      let as;
      let rp;
      let auth;
      const insecure = { [oauth.allowInsecureRequests]: true };

      before(async () => {
        c = await keyClient('node-o4w-dpop');
        as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
        rp = { client_id: c.id };
        auth = oauth.PrivateKeyJwt({ key: c.key.privateKey, kid: c.key.kid });
      });

      /**
       * Runs request + processing once more when the server asks for a
       * DPoP nonce, as the oauth4webapi documentation shows; counts retries.
       */
      async function nonceRetry(retries, fn) {
        try {
          return await fn();
        } catch (err) {
          if (!oauth.isDPoPNonceError(err)) throw err;
          retries.push(err);
          return fn();
        }
      }

      it('signs in, calls userinfo and a protected resource with DPoP, refreshes a DPoP-bound token', async () => {
        const keyPair = await oauth.generateKeyPair('ES256');
        const jkt = await thumbprint(keyPair.publicKey);
        const DPoP = oauth.DPoP(rp, keyPair);
        assert.equal(await DPoP.calculateThumbprint(), jkt, 'library thumbprint agrees with RFC 7638');
        const opts = { ...insecure, DPoP };
        const retries = [];

        const verifier = oauth.generateRandomCodeVerifier();
        const state = oauth.generateRandomState();
        const nonce = oauth.generateRandomNonce();
        const params = new URLSearchParams({
          response_type: 'code', client_id: c.id, redirect_uri: REDIRECT, scope: 'openid email offline_access', state, nonce,
          code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
        });
        const par = await nonceRetry(retries, async () => oauth.processPushedAuthorizationResponse(as, rp,
          await oauth.pushedAuthorizationRequest(as, rp, auth, params, opts)));
        assert.equal(retries.length, 1, 'the first PAR without a nonce gets use_dpop_nonce (server nonces on by default)');
        assert.ok(par.request_uri.startsWith(REQUEST_URI), `request_uri ${par.request_uri}`);
        assert.ok(par.expires_in > 0 && par.expires_in <= 600, `expires_in ${par.expires_in}`);

        const authorize = new URL(as.authorization_endpoint);
        authorize.searchParams.set('client_id', c.id);
        authorize.searchParams.set('request_uri', par.request_uri);
        const cb = await browse(authorize, 3);
        const callback = oauth.validateAuthResponse(as, rp, cb, state);

        const tokens = await nonceRetry(retries, async () => oauth.processAuthorizationCodeResponse(as, rp,
          await oauth.authorizationCodeGrantRequest(as, rp, auth, callback, REDIRECT, verifier, opts),
          { expectedNonce: nonce, requireIdToken: true }));
        assert.equal(tokens.token_type, 'dpop', `token_type ${tokens.token_type}`);
        assert.equal(jwtPayload(tokens.access_token).cnf?.jkt, jkt, 'access token cnf.jkt');
        const claims = oauth.getValidatedIdTokenClaims(tokens);
        assert.ok(claims.sub);

        const ui = await nonceRetry(retries, async () => oauth.processUserInfoResponse(as, rp, claims.sub,
          await oauth.userInfoRequest(as, rp, tokens.access_token, opts)));
        assert.equal(ui.sub, claims.sub);
        assert.equal(ui.email, demoUser(3));

        // The userinfo endpoint as a generic protected resource, by POST.
        const res = await nonceRetry(retries, () => oauth.protectedResourceRequest(tokens.access_token, 'POST',
          new URL(as.userinfo_endpoint), new Headers({ accept: 'application/json' }), null, opts));
        assert.equal(res.status, 200);
        assert.equal((await res.json()).sub, claims.sub);
        // Without the DPoP option the library sends it as a bearer token.
        await assert.rejects(oauth.protectedResourceRequest(tokens.access_token, 'GET', new URL(as.userinfo_endpoint), undefined, null, insecure),
          (e) => e instanceof oauth.WWWAuthenticateChallengeError && e.cause.some((ch) => ch.parameters.error === 'invalid_token'),
          'DPoP-bound token used as bearer');

        const refreshed = await nonceRetry(retries, async () => oauth.processRefreshTokenResponse(as, rp,
          await oauth.refreshTokenGrantRequest(as, rp, auth, tokens.refresh_token, opts)));
        assert.equal(refreshed.token_type, 'dpop');
        assert.equal(jwtPayload(refreshed.access_token).cnf?.jkt, jkt, 'refreshed access token bound to the same key');
        const ui2 = await nonceRetry(retries, async () => oauth.processUserInfoResponse(as, rp, claims.sub,
          await oauth.userInfoRequest(as, rp, refreshed.access_token, opts)));
        assert.equal(ui2.sub, claims.sub);
        assert.equal(retries.length, 1, `the nonce of the first answer served every later request: ${retries.map((e) => e.message)}`);

        // A handle that knows no nonce yet: userinfo asks for one with a
        // DPoP challenge and a DPoP-Nonce header (RFC 9449 9); the retry works.
        const fresh = { ...insecure, DPoP: oauth.DPoP(rp, keyPair) };
        let err;
        await assert.rejects(async () => oauth.processUserInfoResponse(as, rp, claims.sub,
          await oauth.userInfoRequest(as, rp, refreshed.access_token, fresh)), (e) => { err = e; return true; });
        assert.ok(oauth.isDPoPNonceError(err), `want a use_dpop_nonce challenge, got ${err} ${JSON.stringify(err?.cause)}`);
        assert.ok(err.response?.headers.get('dpop-nonce'), 'DPoP-Nonce header with the challenge');
        const ui3 = await oauth.processUserInfoResponse(as, rp, claims.sub, await oauth.userInfoRequest(as, rp, refreshed.access_token, fresh));
        assert.equal(ui3.sub, claims.sub);
      });
    });

    describe('FAPI 2.0 client profile (openid-client)', () => {
      let c;
      let config;
      let rec;

      before(async () => {
        c = await keyClient('node-fapi', ['--profile', 'fapi2']);
        ({ config, rec } = await openidConfig(c));
      });

      it('refuses an authorization request without PAR (invalid_request, redirected with iss)', async () => {
        const { verifier, state, nonce, params } = await authParams();
        const url = client.buildAuthorizationUrl(config, { ...params, state, nonce });
        const cb = await browse(url, 1);
        assert.equal(cb.searchParams.get('error'), 'invalid_request', `callback ${cb}`);
        assert.match(cb.searchParams.get('error_description') ?? '', /PAR|pushed/i, `error_description names PAR: ${cb}`);
        assert.equal(cb.searchParams.get('state'), state);
        assert.equal(cb.searchParams.get('iss'), server.issuer);
        assert.equal(cb.searchParams.get('code'), null);
        await rejectsWith(client.authorizationCodeGrant(config, cb, { pkceCodeVerifier: verifier, expectedState: state }),
          'invalid_request', 'openid-client reading the refusal');
      });

      it('refuses a pushed request without PKCE (invalid_request)', async () => {
        const keyPair = await client.randomDPoPKeyPair();
        const { params } = await authParams();
        delete params.code_challenge;
        delete params.code_challenge_method;
        await rejectsWith(client.buildAuthorizationUrlWithPAR(config, { ...params, state: client.randomState(), nonce: client.randomNonce() },
          { DPoP: client.getDPoPHandle(config, keyPair) }), 'invalid_request', 'FAPI 2.0 PAR without PKCE');
      });

      it('refuses the token request without DPoP (invalid_dpop_proof)', async () => {
        const { verifier, state, nonce, params } = await authParams();
        const url = await client.buildAuthorizationUrlWithPAR(config, { ...params, state, nonce });
        const cb = await browse(url, 2);
        await rejectsWith(client.authorizationCodeGrant(config, cb, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }),
          'invalid_dpop_proof', `FAPI 2.0 code exchange without a DPoP proof (${rec.show()})`);
      });

      it('refuses a client secret instead of private_key_jwt (invalid_client), at PAR and at the token endpoint', async () => {
        const secretAuth = client.ClientSecretBasic('a-secret-the-client-never-had-0123');
        const { config: withSecret } = await openidConfig(c, secretAuth);
        const keyPair = await client.randomDPoPKeyPair();
        const { verifier, state, nonce, params } = await authParams();
        await rejectsWith(client.buildAuthorizationUrlWithPAR(withSecret, { ...params, state, nonce }, { DPoP: client.getDPoPHandle(withSecret, keyPair) }),
          'invalid_client', 'FAPI 2.0 PAR with client_secret_basic');
        // A code obtained properly, exchanged with a secret.
        const DPoP = client.getDPoPHandle(config, keyPair);
        const url = await client.buildAuthorizationUrlWithPAR(config, { ...params, state, nonce }, { DPoP });
        const cb = await browse(url, 3);
        await rejectsWith(client.authorizationCodeGrant(withSecret, cb, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce },
          undefined, { DPoP: client.getDPoPHandle(withSecret, keyPair) }), 'invalid_client', 'FAPI 2.0 code exchange with client_secret_basic');

        // A FAPI 2.0 client registered with a secret: either the CLI refuses
        // it, or the server never accepts the secret.
        const id = `node-fapi-secret-${Math.random().toString(16).slice(2, 8)}`;
        const secret = 'fapi-secret-0123456789abcdef';
        let registered = true;
        try {
          await server.createClient({ id, secret, redirectUris: [REDIRECT], grantTypes: GRANTS, auth: 'client_secret_basic', scopes: SCOPES, flags: ['--profile', 'fapi2'] });
        } catch (e) {
          registered = false;
          assert.match(e.message, /private_key_jwt|fapi/i, `the CLI refused it, saying why: ${e.message}`);
        }
        if (registered) {
          const { config: bad } = await openidConfig({ id }, client.ClientSecretBasic(secret));
          await rejectsWith(client.clientCredentialsGrant(bad, { scope: 'openid' }, { DPoP: client.getDPoPHandle(bad, keyPair) }),
            'invalid_client', 'FAPI 2.0 client registered with a secret, using it');
        }
      });

      it('signs in with PAR + PKCE + DPoP + private_key_jwt', async () => {
        const keyPair = await client.randomDPoPKeyPair();
        const DPoP = client.getDPoPHandle(config, keyPair);
        const { verifier, state, nonce, params } = await authParams();
        const url = await client.buildAuthorizationUrlWithPAR(config, { ...params, state, nonce }, { DPoP });
        const cb = await browse(url, 1);
        assert.equal(cb.searchParams.get('iss'), server.issuer, 'iss in the authorization response (RFC 9207)');
        const tokens = await client.authorizationCodeGrant(config, cb, {
          pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
        }, undefined, { DPoP });
        assert.equal(tokens.token_type.toLowerCase(), 'dpop');
        assert.equal(jwtPayload(tokens.access_token).cnf?.jkt, await thumbprint(keyPair.publicKey));
        const ui = await client.fetchUserInfo(config, tokens.access_token, tokens.claims().sub, { DPoP });
        assert.equal(ui.sub, tokens.claims().sub);
        const r1 = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
        assert.equal(r1.token_type.toLowerCase(), 'dpop');
        await rejectsWith(client.refreshTokenGrant(config, r1.refresh_token), 'invalid_dpop_proof', 'FAPI 2.0 refresh without DPoP');
      });
    });
  });
}
