// Browser test of the no-code block's order on the example page (issue 17):
// a workspace without any TikTok app is told what to do first; it adds its
// own TikTok app (a wrong secret is refused next to the field), copies the
// Redirect URL, checks the app, connects an account with it on the sandbox's
// consent page, and posts. The app runs without a TikTok app of its own
// (APP_ENV_APP=0), with the stand-in sign-in.
//
//   APP_URL=... CLIENT_KEY=... CLIENT_SECRET=... VIDEO_URL=https://.../clip-2s.mp4 \
//   SCREENSHOT_DIR=... node block.mjs
// Prints one JSON line { ok, publish_id, checks } and exits 0 on success.
import { need, run, TIMEOUT } from './common.mjs';

const APP_URL = need('APP_URL');
const CLIENT_KEY = need('CLIENT_KEY');
const CLIENT_SECRET = need('CLIENT_SECRET');
const VIDEO_URL = need('VIDEO_URL');
const SHOTS = need('SCREENSHOT_DIR');
const USER = process.env.APP_USER || 'bob';
const WORKSPACE = process.env.APP_WORKSPACE || 'globex';


await run({ shots: SHOTS, failureShot: 'block-failure.png', clipboardOrigin: APP_URL },
  async ({ page, check, shot }) => {
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const settings = page.locator('#settings');
  const next = page.locator('#next-step');

  // 0. Sign in: without a TikTok app the page says what to do first.
  await page.goto(APP_URL + '/tiktok/');
  await page.locator('#signin-user').fill(USER);
  await page.locator('#signin-workspace').fill(WORKSPACE);
  await Promise.all([page.waitForURL(APP_URL + '/tiktok/'), page.locator('#signin-button').click()]);
  await next.filter({ hasText: 'First add your TikTok app' }).waitFor();
  check(true, 'without a TikTok app the page says to add one first: ' + await next.innerText());
  check(await page.locator('#steps li.current').getAttribute('data-step') === 'configure',
    'the first step of the block is the current one');
  check(await page.locator('#connect').isDisabled(), 'Connect waits until an app is configured');
  await shot('block-1-start.png', settings);

  // 1. Configure: a wrong secret is refused next to its field, nothing saved.
  await page.locator('#app-name').fill('Globex posting');
  await page.locator('#app-client-key').fill(CLIENT_KEY);
  await page.locator('#app-client-secret').fill('not-the-secret');
  await page.locator('#app-audited').check();      // the sandbox app is an audited one
  await page.locator('#app-save').click();
  const secretError = page.locator('#app-client-secret-error');
  await secretError.waitFor();
  check((await secretError.innerText()).includes('TikTok refused this Client key and Client secret'),
    'a wrong secret is refused next to the Client secret field: ' + await secretError.innerText());
  check(await page.locator('#app-client-secret').getAttribute('aria-invalid') === 'true',
    'the Client secret field is marked invalid');
  check(await page.locator('#apps li').count() === 0, 'nothing was saved');
  await shot('block-2-wrong-secret.png', settings);
  await page.locator('#app-client-secret').fill(CLIENT_SECRET);
  await page.locator('#app-save').click();
  await page.locator('#apps li').first().waitFor();
  const meta = await page.locator('#apps li .muted').first().innerText();
  check(meta.includes('...' + CLIENT_SECRET.slice(-4))
    && !meta.includes(CLIENT_SECRET), 'the saved secret shows only its last characters: ' + meta);
  check(meta.includes('Anyone in workspace ' + WORKSPACE) && meta.includes('audited'),
    'a workspace configuration by default, marked audited: ' + meta);
  check(await page.locator('#app-client-secret').inputValue() === '', 'the secret field is emptied after saving');
  check(!(await page.content()).includes(CLIENT_SECRET), 'the page holds no client secret');
  await next.filter({ hasText: 'copy the Redirect URL' }).waitFor();
  check(true, 'next, the page says to copy the Redirect URL');

  // 2. Copy the Redirect URL (the app's own callback) with the Copy button.
  const redirect = await page.locator('#app-redirect').inputValue();
  check(redirect === APP_URL + '/tiktok/callback', 'the Redirect URL is the app\'s callback: ' + redirect);
  await page.locator('#copy-redirect').click();
  await page.locator('#copy-status').filter({ hasText: 'Copied' }).waitFor();
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  check(clip === redirect, 'the Copy button put the exact Redirect URL on the clipboard');
  await next.filter({ hasText: 'check the app' }).waitFor();
  await shot('block-3-redirect-copied.png', settings);

  // 3. Check the app: each part in plain words.
  await page.getByRole('button', { name: 'Check Globex posting' }).click();
  await page.locator('#apps .checklist li').first().waitFor();
  const lines = await page.locator('#apps .checklist li').allInnerTexts();
  check(lines.length === 4 && (await page.locator('#apps .checklist li.fail').count()) === 0
    && lines.some((l) => l.includes('audited by TikTok')),
    'the check passes, each part with its sentence: ' + lines.join(' | '));
  check(lines.some((l) => l.includes('TikTok accepted the Client key and Client secret')),
    'the credentials part says TikTok accepted them');
  check(lines.some((l) => l.includes(redirect)), 'the redirect part names the exact URL to register');
  await next.filter({ hasText: 'connect a TikTok account' }).waitFor();
  check(await page.locator('#connect').isEnabled(), 'Connect is offered once the app is configured');
  await shot('block-4-checked.png', settings);

  // 4. Connect an account with that app on the sandbox's consent page.
  await page.locator('#connect').click();
  await page.waitForURL(/\/v2\/auth\/authorize\//);
  check(new URL(page.url()).searchParams.get('client_key') === CLIENT_KEY,
    'TikTok is asked with the workspace\'s own app (its client key)');
  await page.getByRole('button', { name: 'Authorize' }).click();
  await page.waitForURL(APP_URL + '/tiktok/');
  await page.locator('#accounts li').first().waitFor();
  const accMeta = await page.locator('#accounts li .meta').first().innerText();
  check(accMeta.includes('app: Globex posting'), 'the connection shows which app it uses: ' + accMeta);
  await page.locator('#post-form').waitFor();
  await next.filter({ hasText: 'fill in the post' }).waitFor();
  await shot('block-5-connected.png', page.locator('#session'));

  // 5. Post.
  await page.locator('#video-url').fill(VIDEO_URL);
  await page.locator('#caption').fill('Posted through our own TikTok app');
  await page.locator('#privacy').selectOption('SELF_ONLY');
  await page.locator('#post-button:enabled').waitFor();
  await page.locator('#post-button').click();
  await page.locator('#post-status[data-status="PUBLISH_COMPLETE"]').waitFor({ timeout: TIMEOUT });
  const publishId = (await page.locator('#publish-id').textContent()).trim();
  await page.locator('#jobs li[data-state="published"]').first().waitFor();
  check(true, 'the post is listed among the recent posts as posted');
  await next.filter({ hasText: 'All set' }).waitFor();
  check(true, 'every step of the block is done');
  await shot('block-6-posted.png');
  check(!(await page.content()).includes(CLIENT_SECRET), 'the page never held the client secret');
  check(pageErrors.length === 0, 'no script errors on the page (' + pageErrors.join('; ') + ')');
  return { publish_id: publishId };
});
