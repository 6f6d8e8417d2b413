// Browser test of the example page: a person signs in (the stand-in
// sign-in, with a workspace), connects two TikTok accounts on the sandbox's
// consent page with different access ("Only me", "Anyone in this
// workspace"), chooses the one to post with, disconnects the other, sees
// problems next to their fields, then fills the form by the Content
// Sharing Guidelines with the keyboard only, posts and sees PUBLISH_COMPLETE.
//
// Debian's chromium driven by playwright-core (no browser download):
//   APP_URL=http://127.0.0.1:PORT VIDEO_URL_TEMPLATE='https://localhost:P/media/{{clip}}.mp4' \
//   VIDEO_CLIP=clip-2s SECOND_USERNAME=sandbox_private SANDBOX_ADMIN=http://127.0.0.1:P/_sandbox \
//   SANDBOX_USER=sandbox_user SCREENSHOT_DIR=... node test.mjs
// Prints one JSON line { ok, publish_id, status, nickname, second_nickname, checks } and exits 0 on success.
import { need, run, TIMEOUT } from './common.mjs';

const APP_URL = need('APP_URL');
const VIDEO_URL_TEMPLATE = need('VIDEO_URL_TEMPLATE');
const VIDEO_CLIP = need('VIDEO_CLIP');
const SHOTS = need('SCREENSHOT_DIR');
const SECOND_USERNAME = need('SECOND_USERNAME');
const SANDBOX_ADMIN = need('SANDBOX_ADMIN');
const SANDBOX_USER = need('SANDBOX_USER');
const USER = process.env.APP_USER || 'alice';
const WORKSPACE = process.env.APP_WORKSPACE || 'acme';
// Names of the API that the page must never show to a person.
const API_NAMES = ['video_url', 'video_file', 'photo_urls', 'privacy_level', 'brand_own', 'brand_third_party',
  'ai_generated', 'disable_comment', 'comment_disabled', 'open_id', 'publish_id', 'invalid_settings',
  'invalid_argument'];


async function sandboxUser(patch) {
  const res = await fetch(SANDBOX_ADMIN + '/users/' + encodeURIComponent(SANDBOX_USER), {
    method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(patch),
  });
  if (!res.ok) throw new Error('the sandbox refused PATCH /users: ' + res.status);
}

await run({ shots: SHOTS, failureShot: 'example-failure.png' }, async ({ page, context, check, shot }) => {
  const pageErrors = [];
  const consoleProblems = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    if ((m.type() === 'error' || m.type() === 'warning') && /pattern/i.test(m.text())) consoleProblems.push(m.text());
  });
  const noApiNames = async (where) => {
    const text = await page.locator('main').innerText();
    const found = API_NAMES.filter((n) => text.includes(n));
    check(found.length === 0, 'the page speaks in its own labels, no API names (' + where + ')'
      + (found.length ? ': ' + found.join(', ') : ''));
  };

  // 1. Sign in (the example's stand-in for the app's own login, with a workspace).
  await page.goto(APP_URL + '/tiktok/');
  check((await page.locator('#standin-note').innerText()).includes('local development only'),
    'the page says the sign-in is a stand-in for local development only');
  const name = page.locator('#signin-user');
  await name.fill('-starts-with-a-dash');
  check(await name.evaluate((el) => el.validity.patternMismatch),
    'the name field\'s pattern is a valid regular expression under Chromium (a bad name is flagged)');
  await name.fill(USER);
  check(await name.evaluate((el) => el.validity.valid), 'a good name passes the pattern');
  check(consoleProblems.length === 0, 'Chromium reports no invalid pattern (' + consoleProblems.join('; ') + ')');
  await page.locator('#signin-workspace').fill(WORKSPACE);
  await Promise.all([page.waitForURL(APP_URL + '/tiktok/'), page.locator('#signin-button').click()]);
  await page.locator('#me').filter({ hasText: USER }).waitFor();
  await page.locator('#no-connections').waitFor();
  check(await page.locator('#post-form').isHidden() && await page.locator('#connect').isVisible(),
    'before any account is connected the page says so and offers Connect');
  check(await page.locator('#access-only-me').isChecked(), 'the access choice defaults to "Only me"');
  check(await page.locator('#flash').getAttribute('aria-live') === 'polite'
    && await page.locator('#problems').getAttribute('role') === 'alert',
    'status messages are announced (aria-live), problems as alerts (role=alert)');

  // 2. Connect the first account, "Only me": the sandbox's consent page (PKCE), Authorize, back.
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
  await page.locator('#accounts li').first().waitFor();
  await page.locator('#post-form').waitFor();
  const nickname = (await page.locator('#nickname').textContent()).trim();
  check(nickname.length > 0, 'the creator\'s nickname is shown after connecting');
  check((await page.locator('#accounts li .meta').first().innerText()).startsWith('Only you · connected until '),
    'the connection says who can use it and when it expires: ' + await page.locator('#accounts li .meta').first().innerText());

  // 3. Connect a second account, "Anyone in this workspace", as another TikTok user.
  await page.locator('#access-workspace').check();
  await page.locator('#connect').click();
  await page.waitForURL(/\/v2\/auth\/authorize\//);
  await page.locator('select[name="username"]').selectOption(SECOND_USERNAME);
  await page.getByRole('button', { name: 'Authorize' }).click();
  await page.waitForURL(APP_URL + '/tiktok/');
  await page.locator('#accounts li').nth(1).waitFor();
  const items = page.locator('#accounts li');
  check(await items.count() === 2, 'both connections are listed');
  const metas = await page.locator('#accounts li .meta').allInnerTexts();
  check(metas.some((m) => m.startsWith('Only you')) && metas.some((m) => m.startsWith('Anyone in workspace ' + WORKSPACE)),
    'each connection shows who can use it: ' + metas.join(' | '));
  const names = await page.locator('#accounts li .nickname').allInnerTexts();
  const second = names.find((n) => n !== nickname);
  check(names.includes(nickname) && second, 'each connection shows its TikTok nickname: ' + names.join(', '));
  check(await page.locator('#accounts li img:visible').count() >= 1, 'connections show the TikTok avatar');

  // 4. Choose the account to post with.
  const row = (n) => items.filter({ has: page.locator('.nickname', { hasText: n }) });
  await row(nickname).locator('input[type=radio]').check();
  await page.locator('#nickname').filter({ hasText: nickname }).waitFor();
  await row(second).locator('input[type=radio]').check();
  await page.locator('#nickname').filter({ hasText: second }).waitFor();
  check(true, 'choosing a connection switches the form to that TikTok account');
  await shot('example-connections.png', page.locator('#session'));

  // 5. Disconnect the workspace one (revoked at TikTok, gone from the list).
  await row(second).getByRole('button', { name: 'Disconnect ' + second }).click();
  await flash.filter({ hasText: 'Disconnected ' + second }).waitFor();
  await page.locator('#accounts li').nth(1).waitFor({ state: 'detached' });
  check(await items.count() === 1, 'the disconnected account is gone from the list');
  await page.locator('#nickname').filter({ hasText: nickname }).waitFor();
  check(true, 'the remaining account is the one to post with');

  // 6. The form follows the guidelines.
  const privacy = page.locator('#privacy');
  check(await privacy.inputValue() === '', 'the privacy dropdown has no default');
  const options = await privacy.locator('option').evaluateAll((os_) => os_.map((o) => o.value));
  check(options[0] === '' && options.length > 1, 'privacy options come from creator_info, after a placeholder');
  for (const id of ['#allow-comment', '#allow-duet', '#allow-stitch']) {
    check(!(await page.locator(id).isChecked()), id + ' is off by default');
  }
  check(await page.locator('#post-button').isDisabled(), 'Post is disabled until privacy and a URL are given');
  check(await page.locator('#relay').inputValue() === 'auto'
    && (await page.locator('label[for="relay"]').innerText()).includes('If TikTok will not pull the URL'),
    'the relay choice for a Video URL TikTok will not pull is offered, automatic by default');
  check((await page.locator('#post-why').innerText()).includes('Enter the Video URL'),
    'why Post is disabled is visible text: ' + await page.locator('#post-why').innerText());
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
    await shot('example-disclosure.png', page.locator('#disclose-box'));
    await page.locator('#brand-content').uncheck();
  }
  await page.locator('#brand-own').uncheck();
  await page.locator('#disclose').uncheck();
  await privacy.selectOption('SELF_ONLY');

  // 7. An http:// Video URL is flagged while typing, by the server's own rule, next to the field.
  const url = page.locator('#video-url');
  await url.pressSequentially('http://cdn.example/clip.mp4', { delay: 5 });
  const urlError = page.locator('#video-url-error');
  await urlError.waitFor();
  const urlText = await urlError.innerText();
  check(urlText.includes('Video URL') && urlText.includes('https'), 'an http:// Video URL is flagged next to it: ' + urlText);
  check(await url.getAttribute('aria-invalid') === 'true' && await urlError.getAttribute('role') === 'alert',
    'the field is marked invalid and the message announced');
  check(await page.locator('#post-button').isDisabled()
    && (await page.locator('#post-why').innerText()).includes('Video URL'), 'Post says why it is disabled');
  await noApiNames('URL problem');
  await shot('example-url-error.png', page.locator('#post-form'));
  await url.fill('');

  // 8. A problem the server finds is shown next to its field: the creator
  // turns comments off on TikTok after the form was loaded.
  await url.fill(VIDEO_URL_TEMPLATE);
  await page.locator('#caption').fill('{{title}} from the browser #lua');
  await page.locator('input[data-var="clip"]').fill(VIDEO_CLIP);
  await page.locator('input[data-var="title"]').fill('Spring drop');
  await page.locator('#caption-preview').filter({ hasText: 'Spring drop from the browser' }).waitFor();
  await page.locator('#allow-comment').check();
  await page.locator('#post-button:enabled').waitFor();
  await sandboxUser({ comment_disabled: true });
  try {
    await page.locator('#post-button').click();
    const fieldError = page.locator('#interactions-error');
    await fieldError.waitFor();
    const text = await fieldError.innerText();
    check(/comment/i.test(text), 'the server\'s problem is shown next to the interactions: ' + text);
    check(await page.locator('#allow-comment').getAttribute('aria-invalid') === 'true', 'the checkbox is marked invalid');
    await noApiNames('server problem');
    await shot('example-field-error.png', page.locator('#post-form'));
  } finally {
    await sandboxUser({ comment_disabled: false });
  }

  // 9. The keyboard alone: a fresh page, Tab from the top to each field, type, post.
  await page.reload();
  await page.locator('#post-form').waitFor();
  const focused = () => page.evaluate(() => {
    const el = document.activeElement;
    return el ? (el.id || (el.dataset && el.dataset.var ? 'var:' + el.dataset.var : el.tagName)) : '';
  });
  const walk = [];
  const tabTo = async (target) => {
    for (let i = 0; i < 60; i++) {
      await page.keyboard.press('Tab');
      const at = await focused();
      if (at === target) { walk.push(target); return; }
    }
    throw new Error('Tab never reached ' + target + ' (walked: ' + walk.join(' > ') + ')');
  };
  await tabTo('video-url');
  await page.keyboard.type(VIDEO_URL_TEMPLATE);
  await tabTo('caption');
  await page.keyboard.type('{{title}} from the browser #lua');
  await page.locator('input[data-var="title"]').waitFor();
  await tabTo('var:clip');
  await page.keyboard.type(VIDEO_CLIP);
  await tabTo('var:title');
  await page.keyboard.type('Spring drop');
  await tabTo('privacy');
  await page.keyboard.type('Only');
  check(await privacy.inputValue() === 'SELF_ONLY', 'the privacy level is chosen by typing on the select');
  await tabTo('allow-comment');
  await page.keyboard.press('Space');
  check(await page.locator('#allow-comment').isChecked(), 'Space checks Allow comments');
  await page.locator('#caption-preview').filter({ hasText: 'Spring drop from the browser' }).waitFor();
  await page.locator('#post-button:enabled').waitFor();
  await tabTo('post-button');
  check(true, 'keyboard walk: ' + walk.join(' > '));
  await shot('example-keyboard.png');
  await page.keyboard.press('Enter');

  // 10. Post and watch the status.
  await page.locator('#post-status[data-status="PUBLISH_COMPLETE"]').waitFor({ timeout: TIMEOUT });
  const publishId = (await page.locator('#publish-id').textContent()).trim();
  await noApiNames('posted');
  await shot('example-posted.png');
  check(pageErrors.length === 0, 'no script errors on the page (' + pageErrors.join('; ') + ')');
  return { publish_id: publishId, status: 'PUBLISH_COMPLETE', nickname,
    second_nickname: second };
});
