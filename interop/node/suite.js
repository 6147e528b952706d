// The openid-client interop suite, run once per storage backend by
// sqlite.test.js and postgres.test.js.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as client from 'openid-client';
import { Server, DEMO_PASSWORD, demoUser } from './harness.js';
import { Browser } from './browser.js';

const require = createRequire(import.meta.url);
const libVersion = JSON.parse(readFileSync(require.resolve('openid-client/package.json'), 'utf8')).version;

const REDIRECT = 'https://rp.example/callback';
const PUBLIC_REDIRECT = 'https://spa.example/callback';
const POST_LOGOUT = 'https://rp.example/logged-out';
const CONF = { id: 'node-conf', secret: 'node-conf-secret-0123456789' };
const PUB = { id: 'node-public' };
const MACHINE = { id: 'node-machine', secret: 'node-machine-secret-0123456789' };
const LOA2 = 'urn:sqin:loa:2';

const insecure = { execute: [client.allowInsecureRequests] };

/** Asserts that promise rejects with OAuth error code `code`. */
async function rejectsWith(promise, code, what) {
  await assert.rejects(promise, (e) => {
    const got = e?.error ?? e?.cause?.error ?? e?.code;
    assert.equal(got, code, `${what}: expected error ${code}, got ${e?.name}: ${e?.message} ` +
      `${JSON.stringify(e?.cause ?? {})} (status ${e?.status})`);
    return true;
  });
}

export function suite(backend, { skip = false } = {}) {
  describe(`openid-client ${libVersion} against sqin on ${backend}`, { skip }, () => {
    let server;
    let conf; // client_secret_basic, refresh tokens
    let pub; // public client, PKCE only
    let machine; // client_credentials

    before(async () => {
      server = await Server.start({ backend });
      await server.createClient({
        id: CONF.id, secret: CONF.secret, redirectUris: [REDIRECT], postLogoutRedirectUris: [POST_LOGOUT],
        grantTypes: ['authorization_code', 'refresh_token'], auth: 'client_secret_basic',
        scopes: ['openid', 'profile', 'email', 'address', 'offline_access'],
      });
      await server.createClient({
        id: PUB.id, redirectUris: [PUBLIC_REDIRECT], grantTypes: ['authorization_code'], auth: 'none',
        scopes: ['openid', 'profile', 'email'],
      });
      await server.createClient({
        id: MACHINE.id, secret: MACHINE.secret, grantTypes: ['client_credentials'], auth: 'client_secret_basic',
        scopes: ['openid'],
      });
      const issuer = new URL(server.issuer);
      conf = await client.discovery(issuer, CONF.id, undefined, client.ClientSecretBasic(CONF.secret), insecure);
      pub = await client.discovery(issuer, PUB.id, undefined, client.None(), insecure);
      machine = await client.discovery(issuer, MACHINE.id, undefined, client.ClientSecretBasic(MACHINE.secret), insecure);
      // Verify ID token signatures against the JWKS too, not only the claims.
      for (const c of [conf, pub]) client.enableNonRepudiationChecks(c);
    });

    after(async () => {
      if (server) await server.stop();
    });

    /**
     * Signs user n in through the browser pages and exchanges the code with
     * openid-client. Returns { tokens, claims, browser, sawConsent }.
     */
    async function signIn(config, { redirectUri = REDIRECT, user = 1, scope = 'openid profile email', params = {}, browser = new Browser() } = {}) {
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri, scope, state, nonce,
        code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
        ...params,
      });
      let sawConsent = false;
      let sawLogin = false;
      const cb = await browser.navigate(url, redirectUri, {
        username: demoUser(user), password: DEMO_PASSWORD,
        consentSeen: () => { sawConsent = true; }, loginSeen: () => { sawLogin = true; },
      });
      const tokens = await client.authorizationCodeGrant(config, cb, {
        pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
      });
      return { tokens, claims: tokens.claims(), browser, sawConsent, sawLogin, callback: cb };
    }

    it('discovers the provider and its endpoints', () => {
      const md = conf.serverMetadata();
      assert.equal(md.issuer, server.issuer);
      const want = {
        authorization_endpoint: '/authorize', token_endpoint: '/token', userinfo_endpoint: '/userinfo',
        jwks_uri: '/jwks.json', revocation_endpoint: '/revoke', introspection_endpoint: '/introspect',
        end_session_endpoint: '/logout',
      };
      for (const [k, path] of Object.entries(want)) assert.equal(md[k], server.issuer + path, k);
      assert.ok(md.code_challenge_methods_supported?.includes('S256'), 'S256 in code_challenge_methods_supported');
      assert.ok(!md.code_challenge_methods_supported?.includes('plain'), 'plain must not be advertised');
      assert.ok(md.id_token_signing_alg_values_supported?.includes('ES256'), 'ES256 advertised');
      assert.ok(md.response_types_supported?.includes('code'));
      assert.ok(md.grant_types_supported?.includes('refresh_token'));
      assert.ok(md.grant_types_supported?.includes('client_credentials'));
    });

    it('signs in a confidential client (client_secret_basic) with code + PKCE, ID token verified, userinfo', async () => {
      const { tokens, claims, sawConsent } = await signIn(conf, { user: 1 });
      assert.equal(claims.iss, server.issuer);
      assert.equal(claims.aud === CONF.id || (Array.isArray(claims.aud) && claims.aud.includes(CONF.id)), true, `aud ${claims.aud}`);
      assert.equal(claims.acr, LOA2, 'acr of a LoA-2 account');
      assert.ok(claims.sub, 'sub');
      assert.ok(claims.auth_time, 'auth_time');
      assert.equal(tokens.token_type.toLowerCase(), 'bearer');
      assert.ok(tokens.expires_in > 0, 'expires_in');
      assert.ok(sawConsent, 'the first sign-in of an account to a client asks consent');
      const ui = await client.fetchUserInfo(conf, tokens.access_token, claims.sub);
      assert.equal(ui.sub, claims.sub);
      assert.equal(ui.email, demoUser(1), 'email released with the email scope');
    });

    it('signs in a public client (token_endpoint_auth_method none) with code + PKCE', async () => {
      const { tokens, claims } = await signIn(pub, { redirectUri: PUBLIC_REDIRECT, user: 2 });
      assert.equal(claims.acr, LOA2);
      assert.ok(tokens.access_token);
      assert.equal(tokens.refresh_token, undefined, 'no refresh token for a client without the refresh_token grant');
      const ui = await client.fetchUserInfo(pub, tokens.access_token, claims.sub);
      assert.equal(ui.sub, claims.sub);
    });

    it('prompt=consent asks consent again; a second sign-in without it does not', async () => {
      const again = await signIn(conf, { user: 1 });
      assert.equal(again.sawConsent, false, 'consent already given: not asked again');
      const forced = await signIn(conf, { user: 1, params: { prompt: 'consent' } });
      assert.equal(forced.sawConsent, true, 'prompt=consent must ask again');
    });

    it('rotates refresh tokens; reuse of an old one fails with invalid_grant and revokes the family', async () => {
      const { tokens, claims } = await signIn(conf, { user: 3, scope: 'openid email offline_access' });
      assert.ok(tokens.refresh_token, 'refresh token issued with offline_access');
      const r1 = await client.refreshTokenGrant(conf, tokens.refresh_token);
      assert.ok(r1.access_token, 'new access token');
      assert.ok(r1.refresh_token, 'new refresh token (rotation)');
      assert.notEqual(r1.refresh_token, tokens.refresh_token, 'refresh token rotated');
      if (r1.id_token) assert.equal(r1.claims().sub, claims.sub, 'same subject after refresh');
      const ui = await client.fetchUserInfo(conf, r1.access_token, claims.sub);
      assert.equal(ui.sub, claims.sub);

      await rejectsWith(client.refreshTokenGrant(conf, tokens.refresh_token), 'invalid_grant', 'reused refresh token');
      await rejectsWith(client.refreshTokenGrant(conf, r1.refresh_token), 'invalid_grant', 'newest refresh token after reuse (family revoked)');
      const intro = await client.tokenIntrospection(conf, r1.refresh_token);
      assert.equal(intro.active, false, `refresh token of a revoked family: ${JSON.stringify(intro)}`);
    });

    it('introspects a live access token', async () => {
      const { tokens, claims } = await signIn(conf, { user: 2 });
      const intro = await client.tokenIntrospection(conf, tokens.access_token);
      assert.equal(intro.active, true, JSON.stringify(intro));
      assert.equal(intro.client_id, CONF.id);
      assert.equal(intro.sub, claims.sub);
      assert.ok(intro.scope?.split(' ').includes('openid'), `scope ${intro.scope}`);
      assert.ok(intro.exp > Date.now() / 1000, `exp ${intro.exp}`);
    });

    it('revokes tokens: revoked access token introspects inactive, revoked refresh token is refused', async () => {
      const { tokens } = await signIn(conf, { user: 1, scope: 'openid offline_access' });
      await client.tokenRevocation(conf, tokens.access_token);
      const intro = await client.tokenIntrospection(conf, tokens.access_token);
      assert.equal(intro.active, false, `after revocation: ${JSON.stringify(intro)}`);
      await assert.rejects(client.fetchUserInfo(conf, tokens.access_token, client.skipSubjectCheck),
        'userinfo with a revoked access token must fail');

      assert.ok(tokens.refresh_token);
      await client.tokenRevocation(conf, tokens.refresh_token, { token_type_hint: 'refresh_token' });
      assert.equal((await client.tokenIntrospection(conf, tokens.refresh_token)).active, false);
      await rejectsWith(client.refreshTokenGrant(conf, tokens.refresh_token), 'invalid_grant', 'revoked refresh token');
      // Revoking an unknown token is not an error (RFC 7009 §2.2).
      await client.tokenRevocation(conf, 'not-a-token-' + client.randomState());
    });

    it('RP-initiated logout ends the session; prompt=none then gives login_required', async () => {
      const { tokens, browser } = await signIn(conf, { user: 2 });
      const state = client.randomState();
      const logoutUrl = client.buildEndSessionUrl(conf, {
        id_token_hint: tokens.id_token, post_logout_redirect_uri: POST_LOGOUT, state,
      });
      const back = await browser.navigate(logoutUrl, POST_LOGOUT);
      assert.equal(back.origin + back.pathname, POST_LOGOUT);
      assert.equal(back.searchParams.get('state'), state, 'state returned to the post-logout URI');

      // Same browser, no session any more.
      const verifier = client.randomPKCECodeVerifier();
      const st = client.randomState();
      const url = client.buildAuthorizationUrl(conf, {
        redirect_uri: REDIRECT, scope: 'openid', state: st, prompt: 'none', nonce: client.randomNonce(),
        code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
      });
      const cb = await browser.navigate(url, REDIRECT, {});
      await rejectsWith(client.authorizationCodeGrant(conf, cb, { pkceCodeVerifier: verifier, expectedState: st }),
        'login_required', `prompt=none after logout (${cb.search})`);
    });

    it('prompt=none with a live session signs in without any page', async () => {
      const { browser } = await signIn(conf, { user: 3 });
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(conf, {
        redirect_uri: REDIRECT, scope: 'openid email', state, nonce, prompt: 'none',
        code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
      });
      const cb = await browser.navigate(url, REDIRECT, {}); // no credentials: a login page would throw
      const tokens = await client.authorizationCodeGrant(conf, cb, {
        pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
      });
      assert.equal(tokens.claims().acr, LOA2);
    });

    it('client_credentials grant gives an access token and no ID token', async () => {
      const t = await client.clientCredentialsGrant(machine);
      assert.ok(t.access_token, 'access token');
      assert.equal(t.token_type.toLowerCase(), 'bearer');
      assert.equal(t.id_token, undefined, 'no ID token without a user');
      assert.equal(t.refresh_token, undefined, 'no refresh token for client_credentials (RFC 6749 §4.4.3)');
      const intro = await client.tokenIntrospection(machine, t.access_token);
      assert.equal(intro.active, true, JSON.stringify(intro));
      assert.equal(intro.client_id, MACHINE.id);
    });

    it('refuses a code exchange with the wrong PKCE verifier (invalid_grant)', async () => {
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const url = client.buildAuthorizationUrl(conf, {
        redirect_uri: REDIRECT, scope: 'openid', state,
        code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
      });
      const cb = await new Browser().navigate(url, REDIRECT, { username: demoUser(1), password: DEMO_PASSWORD });
      await rejectsWith(client.authorizationCodeGrant(conf, cb, {
        pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: state,
      }), 'invalid_grant', 'wrong code_verifier');
    });
  });
}
