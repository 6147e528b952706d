// Account creation and identity proofing in a real browser (Chromium via
// playwright-core, unmodified), with axe-core checking every page of the
// flow for accessibility violations: a citizen comes from an online
// service, creates an account (French, then English), reads the email code
// in the demo mail sink, proves identity with the health card and the SIN
// of a demo identity (built-in demo holder, offline), continues to the
// service signed in (no second sign-in), and the ID token the service gets
// says urn:sqin:loa:2. Then the code-by-mail path: the citizen asks for a
// letter, `sqin letters export` prints it, the code is read from the PDF
// and entered, and the service gets urn:sqin:loa:2 again.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { Server, freePort } from './harness.js';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const noBrowser = !existsSync(CHROMIUM) && !process.env.CI
  ? `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)` : false;

/** Runs axe-core on the page and fails on any violation. */
async function checkA11y(page, what) {
  // Evaluated through the DevTools protocol: the pages' strict CSP (no
  // script at all) stays in force for everything else.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => await globalThis.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  }));
  const msgs = result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  assert.deepEqual(msgs, [], `axe violations on ${what}`);
}

/** The newest mail of the demo sink addressed to `to`. */
async function mailTo(dir, to) {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if (existsSync(dir)) {
      const files = readdirSync(dir).filter((f) => f.endsWith('.eml'))
        .map((f) => join(dir, f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
      for (const f of files) {
        const m = readFileSync(f, 'utf8');
        if (m.includes(`To: ${to}\r\n`)) return m;
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail to ${to} in ${dir}`);
}

/** The demo identities the server printed. */
function demoIdentities(log) {
  // The line's end is looked ahead, not consumed: it starts the next line.
  const re = /\n {4}(.+), (.+) {2}born ([0-9-]+) {2}health card ([A-Z]{4} [0-9]{4} [0-9]{4}) exp\. ([0-9-]+) {2}SIN ([0-9 ]+)(?=\n)/g;
  return [...log.matchAll(re)].map((m) => ({ family: m[1], given: m[2], birth: m[3], nam: m[4], expiry: m[5], sin: m[6] }));
}

/** A relying party's redirect endpoint that keeps the codes it receives. */
async function callback() {
  const port = await freePort();
  const codes = [];
  const srv = createServer((req, res) => {
    const u = new URL(req.url, `http://127.0.0.1:${port}`);
    if (u.pathname === '/cb' && u.searchParams.get('code')) codes.push(u.searchParams.get('code'));
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="fr"><title>Service</title><main><h1>Service</h1></main></html>');
  });
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  return { uri: `http://127.0.0.1:${port}/cb`, codes, close: () => srv.close() };
}

const b64url = (b) => b.toString('base64url');
const execFileP = promisify(execFile);

/** The text a PDF shows: the literal strings of its (uncompressed) content streams' Tj operators, Latin-1. */
function pdfText(buf) {
  const s = buf.toString('latin1');
  const out = [];
  for (const m of s.matchAll(/stream\n([\s\S]*?)endstream/g)) {
    for (const t of m[1].matchAll(/\(((?:\\.|[^\\)])*)\) Tj/g)) {
      out.push(t[1].replace(/\\([0-7]{3}|.)/g, (_, e) => (/^[0-7]{3}$/.test(e) ? String.fromCharCode(parseInt(e, 8)) : e)));
    }
  }
  return out.join('\n');
}

/** Starts a code flow of clientId from a fresh page; returns the PKCE verifier. */
async function authorize(page, issuer, clientId, redirectUri) {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const q = new URLSearchParams({ client_id: clientId, redirect_uri: redirectUri, response_type: 'code',
    scope: 'openid', state: 's', nonce: 'n', code_challenge: challenge, code_challenge_method: 'S256' });
  await page.goto(`${issuer}/authorize?${q}`);
  return verifier;
}

/** Exchanges the newest code the service received; returns the ID token's claims. */
async function idTokenClaims(issuer, rp, clientId, secret, verifier) {
  const authCode = rp.codes.at(-1);
  assert.ok(authCode, 'the service received a code');
  const tok = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded',
      Authorization: 'Basic ' + Buffer.from(`${clientId}:${secret}`).toString('base64') },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: authCode, redirect_uri: rp.uri, code_verifier: verifier }),
  }).then((r) => r.json());
  return JSON.parse(Buffer.from(tok.id_token.split('.')[1], 'base64url').toString());
}

test('account creation and proofing in Chromium, French and English, axe-clean', { skip: noBrowser, timeout: 180000 }, async () => {
  const server = await Server.start({ backend: 'sqlite' });
  const rp = await callback();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const secret = b64url(randomBytes(24));
    await server.createClient({ id: 'service-signup', secret, redirectUris: [rp.uri] });
    const mailDir = join(server.dir, 'sqin-data', 'mail');
    let ids = [];
    for (let i = 0; i < 50 && ids.length < 2; i++) {
      ids = demoIdentities(readFileSync(server.logFile, 'utf8'));
      if (ids.length < 2) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ids.length >= 2, 'the demo prints identities for account creation');

    for (const [lang, who, t] of [
      ['fr', ids[0], { create: 'Créer un compte', submit: 'Créer mon compte', verify: 'Vérifier', prove: 'Vérifier mon identité',
        done: 'Vérification de votre identité terminée', cont: 'Continuer vers le service' }],
      ['en', ids[1], { create: 'Create an account', submit: 'Create my account', verify: 'Verify', prove: 'Verify my identity',
        done: 'Identity verification complete', cont: 'Continue to the service' }],
    ]) {
      const ctx = await browser.newContext({ locale: lang === 'fr' ? 'fr-CA' : 'en-CA' });
      const page = await ctx.newPage();
      const email = `navigateur.${lang}@exemple.test`;
      const password = 'trois chats dorment au soleil';
      const verifier = b64url(randomBytes(32));
      const challenge = b64url(createHash('sha256').update(verifier).digest());
      const q = new URLSearchParams({ client_id: 'service-signup', redirect_uri: rp.uri, response_type: 'code',
        scope: 'openid', state: 's', nonce: 'n', code_challenge: challenge, code_challenge_method: 'S256' });
      await page.goto(`${server.issuer}/authorize?${q}`);
      await checkA11y(page, `${lang} sign-in page`);
      await page.getByRole('link', { name: t.create }).click();

      await checkA11y(page, `${lang} registration page`);
      assert.equal(await page.getAttribute('html', 'lang'), lang);
      // An error first: the summary links to the fields.
      await page.getByRole('button', { name: t.submit }).click();
      await checkA11y(page, `${lang} registration page with errors`);
      assert.ok(await page.locator('.error-summary a[href="#email"]').count() === 1);

      await page.getByLabel(lang === 'fr' ? 'Adresse courriel' : 'Email address').fill(email);
      await page.locator('#password').fill(password);
      await page.locator('#password2').fill(password);
      await page.locator('#terms').check();
      await page.getByRole('button', { name: t.submit }).click();
      await page.waitForURL('**/inscription/code');
      await checkA11y(page, `${lang} code page`);

      const mail = await mailTo(mailDir, email);
      const code = /: ([0-9]{6})\r\n/.exec(mail)[1];
      await page.locator('#code').fill(code);
      await page.getByRole('button', { name: t.verify, exact: true }).click();
      await page.waitForURL('**/verification');
      await checkA11y(page, `${lang} proofing page`);

      await page.locator('#family_name').fill(who.family);
      await page.locator('#given_names').fill(who.given);
      await page.locator('#birth_date').fill(who.birth);
      await page.locator('#use-health-card').check();
      await page.locator('#health-card-nam').fill(who.nam);
      await page.locator('#health-card-expiry').fill(who.expiry.replace('-', ' '));
      await page.locator('#use-sin').check();
      await page.locator('#sin-sin').fill(who.sin);
      await page.getByRole('button', { name: t.prove }).click();
      await page.getByRole('heading', { name: t.done }).waitFor();
      await checkA11y(page, `${lang} proofing done page`);

      // Proofing signed the citizen in: the link resumes the service's
      // request without the sign-in form.
      await page.getByRole('link', { name: t.cont }).click();
      if (await page.locator('button[name="approve"]').count()) {
        await checkA11y(page, `${lang} consent page`);
        await page.locator('button[name="approve"]').click();
      }
      await page.waitForURL(`${rp.uri}**`);
      const authCode = rp.codes.at(-1);
      assert.ok(authCode, 'the service received a code');
      const tok = await fetch(`${server.issuer}/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded',
          Authorization: 'Basic ' + Buffer.from(`service-signup:${secret}`).toString('base64') },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: authCode, redirect_uri: rp.uri, code_verifier: verifier }),
      }).then((r) => r.json());
      const claims = JSON.parse(Buffer.from(tok.id_token.split('.')[1], 'base64url').toString());
      assert.equal(claims.acr, 'urn:sqin:loa:2');
      await ctx.close();
    }
  } finally {
    await browser.close();
    rp.close();
    await server.stop();
  }
});

test('code by mail in Chromium: letter requested, printed as PDF, code entered, level 2 at the service, axe-clean', { skip: noBrowser, timeout: 180000 }, async () => {
  const server = await Server.start({ backend: 'sqlite' });
  const rp = await callback();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const secret = b64url(randomBytes(24));
    await server.createClient({ id: 'service-courrier', secret, redirectUris: [rp.uri] });
    const mailDir = join(server.dir, 'sqin-data', 'mail');
    let ids = [];
    for (let i = 0; i < 50 && ids.length < 3; i++) {
      ids = demoIdentities(readFileSync(server.logFile, 'utf8'));
      if (ids.length < 3) await new Promise((r) => setTimeout(r, 100));
    }
    const who = ids[2];
    assert.ok(who, 'the demo prints identities for account creation');
    const ctx = await browser.newContext({ locale: 'fr-CA' });
    const page = await ctx.newPage();
    const verifier = await authorize(page, server.issuer, 'service-courrier', rp.uri);
    await page.getByRole('link', { name: 'Créer un compte' }).click();
    const email = 'courrier.navigateur@exemple.test';
    const password = 'cinq tortues traversent la route';
    await page.getByLabel('Adresse courriel').fill(email);
    await page.locator('#password').fill(password);
    await page.locator('#password2').fill(password);
    await page.locator('#terms').check();
    await page.getByRole('button', { name: 'Créer mon compte' }).click();
    await page.waitForURL('**/inscription/code');
    const code = /: ([0-9]{6})\r\n/.exec(await mailTo(mailDir, email))[1];
    await page.locator('#code').fill(code);
    await page.getByRole('button', { name: 'Vérifier', exact: true }).click();
    await page.waitForURL('**/verification');

    // No secrets at hand: a code by mail.
    await page.getByRole('link', { name: 'Recevoir un code par la poste' }).click();
    await page.waitForURL('**/verification/courrier/demande');
    await checkA11y(page, 'letter request page');
    await page.getByRole('button', { name: 'Demander la lettre' }).click();
    await checkA11y(page, 'letter request page with errors');
    assert.equal(await page.locator('.error-summary a[href="#consent"]').count(), 1);
    await page.locator('#family_name').fill(who.family);
    await page.locator('#given_names').fill(who.given);
    await page.locator('#birth_date').fill(who.birth);
    await page.locator('#consent').check();
    await page.getByRole('button', { name: 'Demander la lettre' }).click();
    await page.getByRole('heading', { name: 'Demande de lettre reçue' }).waitFor();
    await checkA11y(page, 'letter requested page');

    // The print job, as an operator runs it.
    const out = join(server.dir, 'lettres');
    const { stdout } = await execFileP(server.bin, ['letters', 'export', '--db', server.db, '--demo', '--data-dir',
      join(server.dir, 'sqin-data'), '--out', out, '--issuer', server.issuer], { cwd: server.dir, timeout: 30000 });
    const batch = JSON.parse(stdout);
    assert.equal(batch.printed, 1);
    const manifest = JSON.parse(readFileSync(join(batch.dir, 'manifest.json'), 'utf8'));
    const letter = pdfText(readFileSync(join(batch.dir, manifest.letters[0].file)));
    assert.ok(letter.includes(who.family.toUpperCase()), 'the letter is addressed to the person');
    const mailCode = /Votre code : ([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4})/.exec(letter)[1];

    await page.getByRole('link', { name: 'Entrer le code reçu par la poste' }).click();
    await page.waitForURL('**/verification/courrier');
    await checkA11y(page, 'mail code page');
    await page.locator('#code').fill('ZZZZ-ZZZZ-ZZZZ');
    await page.getByRole('button', { name: 'Vérifier le code' }).click();
    await page.locator('.error-summary').waitFor();
    await checkA11y(page, 'mail code page with an error');
    await page.locator('#code').fill(mailCode.toLowerCase());
    await page.getByRole('button', { name: 'Vérifier le code' }).click();
    await page.getByRole('heading', { name: 'Vérification de votre identité terminée' }).waitFor();
    await checkA11y(page, 'mail code done page');
    await page.getByRole('link', { name: 'Continuer vers le service' }).click();
    await page.waitForURL((u) => u.toString().startsWith(rp.uri) || u.pathname === '/consent');
    if (await page.locator('button[name="approve"]').count()) {
      await checkA11y(page, 'consent page');
      await page.locator('button[name="approve"]').click();
    }
    await page.waitForURL(`${rp.uri}**`);
    const claims = await idTokenClaims(server.issuer, rp, 'service-courrier', secret, verifier);
    assert.equal(claims.acr, 'urn:sqin:loa:2');
    await ctx.close();
  } finally {
    await browser.close();
    rp.close();
    await server.stop();
  }
});
