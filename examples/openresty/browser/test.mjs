// Browser test of the example page: a person signs in, connects a TikTok
// account on the sandbox's consent page, fills the form by the Content
// Sharing Guidelines, posts and sees PUBLISH_COMPLETE.
//
// Debian's chromium driven by playwright-core (no browser download):
//   APP_URL=http://127.0.0.1:PORT VIDEO_URL_TEMPLATE='https://localhost:P/media/{{clip}}.mp4' \
//   VIDEO_CLIP=clip-2s SCREENSHOT_DIR=... node test.mjs
// Prints one JSON line { ok, publish_id, status, nickname, checks } and exits 0 on success.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const need = (name) => {
  const v = process.env[name];
  if (!v) { console.error(`browser test: ${name} is not set`); process.exit(2); }
  return v;
};
const APP_URL = need('APP_URL');
const VIDEO_URL_TEMPLATE = need('VIDEO_URL_TEMPLATE');
const VIDEO_CLIP = need('VIDEO_CLIP');
const SHOTS = need('SCREENSHOT_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const USER = process.env.APP_USER || 'alice';
const TIMEOUT = 30000;

const checks = [];
function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  checks.push(what);
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tiktok-example-chromium-'));
fs.mkdirSync(SHOTS, { recursive: true });
let context;
let page;
let exitCode = 1;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    // The sandbox's consent page and media use its throwaway CA.
    ignoreHTTPSErrors: true,
    viewport: { width: 900, height: 1300 },
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  // 1. Sign in (the example's stand-in for the app's own login).
  await page.goto(APP_URL + '/tiktok/');
  await page.locator('#signin-user').fill(USER);
  await Promise.all([page.waitForURL(APP_URL + '/tiktok/'), page.locator('#signin-button').click()]);
  await page.locator('#me').filter({ hasText: USER }).waitFor();
  await page.locator('#connect').waitFor();
  check(await page.locator('#post-form').isHidden(), 'before any account is connected only a Connect button is shown');

  // 2. Connect: the sandbox's consent page, Authorize, back to the app.
  await page.locator('#connect').click();
  await page.waitForURL(/\/v2\/auth\/authorize\//);
  check(page.url().includes('redirect_uri=' + encodeURIComponent(APP_URL + '/tiktok/callback')),
    'the authorize URL carries the app\'s own callback');
  const authorize = new URL(page.url());
  check(/^[0-9a-f]{64}$/.test(authorize.searchParams.get('code_challenge') || '')
    && authorize.searchParams.get('code_challenge_method') === 'S256',
    'the authorize URL carries a PKCE challenge (hex SHA-256, S256)');
  const oauthCookie = (await context.cookies(APP_URL + '/tiktok/callback')).find((c) => c.name === 'tiktok_oauth');
  check(oauthCookie && oauthCookie.httpOnly && oauthCookie.value === authorize.searchParams.get('state'),
    'the browser keeps only the state, in an HttpOnly cookie (the PKCE verifier stays on the server)');
  await page.getByRole('button', { name: 'Authorize' }).click();
  await page.waitForURL(APP_URL + '/tiktok/');
  const flash = page.locator('#flash');
  await flash.waitFor();
  check(await flash.getAttribute('class') === 'ok', 'the page says the account is connected: ' + await flash.textContent());
  await page.locator('#creator').waitFor();
  await page.locator('#post-form').waitFor();
  const nickname = (await page.locator('#nickname').textContent()).trim();
  check(nickname.length > 0, 'the creator\'s nickname is shown after connecting');

  // 3. The form follows the guidelines.
  const privacy = page.locator('#privacy');
  check(await privacy.inputValue() === '', 'the privacy dropdown has no default');
  const options = await privacy.locator('option').evaluateAll((os_) => os_.map((o) => o.value));
  check(options[0] === '' && options.length > 1, 'privacy options come from creator_info, after a placeholder');
  for (const id of ['#allow-comment', '#allow-duet', '#allow-stitch']) {
    check(!(await page.locator(id).isChecked()), id + ' is off by default');
  }
  check(await page.locator('#post-button').isDisabled(), 'Post is disabled until privacy and a URL are given');
  await privacy.selectOption('SELF_ONLY');
  check(await page.locator('#allow-duet').isDisabled() && await page.locator('#allow-stitch').isDisabled(),
    'duet and stitch are greyed for Only me');
  check(await page.locator('#allow-comment').isEnabled(), 'comment stays available for Only me');
  check((await page.locator('#declaration').textContent()).includes('Music Usage Confirmation'),
    'the music usage declaration is shown');

  // Disclosure: on with nothing chosen blocks posting; Your brand -> Promotional content.
  await page.locator('#disclose').check();
  check(await page.locator('#disclosure-missing').isVisible(), 'disclosure on with no choice explains what is missing');
  check(await page.locator('#brand-content').isDisabled(), 'Branded content is greyed while Only me is chosen');
  await page.locator('#brand-own').check();
  check((await page.locator('#disclosure-label').textContent()).includes('Promotional content'),
    'Your brand shows the "Promotional content" label');
  if (options.includes('MUTUAL_FOLLOW_FRIENDS') || options.includes('PUBLIC_TO_EVERYONE')) {
    await privacy.selectOption(options.includes('MUTUAL_FOLLOW_FRIENDS') ? 'MUTUAL_FOLLOW_FRIENDS' : 'PUBLIC_TO_EVERYONE');
    await page.locator('#brand-content').check();
    check((await page.locator('#disclosure-label').textContent()).includes('Paid partnership'),
      'Branded content shows the "Paid partnership" label');
    check((await page.locator('#declaration').textContent()).includes('Branded Content Policy'),
      'Branded content adds the Branded Content Policy to the declaration');
    check(await privacy.locator('option[value="SELF_ONLY"]').isDisabled(),
      'Only me is disabled while Branded content is chosen');
    await page.locator('#disclose-box').screenshot({ path: path.join(SHOTS, 'example-disclosure.png') });
    await page.locator('#brand-content').uncheck();
  }
  await page.locator('#brand-own').uncheck();
  await page.locator('#disclose').uncheck();
  await privacy.selectOption('SELF_ONLY');

  // 4. Video URL and caption with {{variables}}, filled in below the form.
  await page.locator('#video-url').fill(VIDEO_URL_TEMPLATE);
  await page.locator('#caption').fill('{{title}} from the browser #lua');
  await page.locator('input[data-var="clip"]').fill(VIDEO_CLIP);
  await page.locator('input[data-var="title"]').fill('Spring drop');
  await page.locator('#caption-preview').filter({ hasText: 'Spring drop from the browser' }).waitFor();
  await page.locator('#allow-comment').check();
  await page.locator('#post-button:enabled').waitFor();
  await page.screenshot({ path: path.join(SHOTS, 'example-form.png'), fullPage: true });

  // 5. Post and watch the status.
  await page.locator('#post-button').click();
  await page.locator('#post-status[data-status="PUBLISH_COMPLETE"]').waitFor({ timeout: TIMEOUT });
  const publishId = (await page.locator('#publish-id').textContent()).trim();
  await page.screenshot({ path: path.join(SHOTS, 'example-posted.png'), fullPage: true });
  check(consoleErrors.length === 0, 'no script errors on the page (' + consoleErrors.join('; ') + ')');
  console.log(JSON.stringify({ ok: true, publish_id: publishId, status: 'PUBLISH_COMPLETE', nickname, checks }));
  exitCode = 0;
} catch (e) {
  if (page) {
    try { await page.screenshot({ path: path.join(SHOTS, 'example-failure.png'), fullPage: true }); } catch (_) { /* none */ }
  }
  console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e), url: page ? page.url() : null, checks }));
} finally {
  if (context) await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(exitCode);
