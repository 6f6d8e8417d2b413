// The posting page of the lua-tiktok OpenResty example. Plain JavaScript:
// it reads the creator's current settings from GET /tiktok/creator and
// applies TikTok's Content Sharing Guidelines to the form (privacy chosen by
// hand from the creator's own options, interactions off by default and greyed
// out where the creator disabled them, duet/stitch greyed for "Only me", the
// commercial-content disclosure and its label, the consent sentence), then
// posts with POST /tiktok/posts (a job on the server) and follows the job
// with GET /tiktok/jobs/<id>. Before that, in the no-code block's order: the
// settings (your TikTok app: Client key, Client secret, the Redirect URL to
// copy, the check), then Connect.
'use strict';

const $ = (id) => document.getElementById(id);
const FINAL = new Set(['PUBLISH_COMPLETE', 'SEND_TO_USER_INBOX', 'FAILED']);
const STATUS_TEXT = {
  QUEUED: 'Your post is queued on the server; it is sent to TikTok in a moment…',
  PROCESSING_DOWNLOAD: 'TikTok is downloading your video…',
  PROCESSING_UPLOAD: 'Your video is being uploaded to TikTok…',
  PUBLISH_COMPLETE: 'Posted to TikTok.',
  SEND_TO_USER_INBOX: 'Sent to the TikTok inbox: open TikTok to finish the post.',
  FAILED: 'The post failed.',
};
const MISSING_DISCLOSURE = 'You need to indicate if your content promotes yourself, a third party, or both.';
const BRANDED_PRIVATE = 'Branded content visibility cannot be set to private.';
const LINK_TEXT = {
  'Music Usage Confirmation': 'https://www.tiktok.com/legal/page/global/music-usage-confirmation/en',
  'Branded Content Policy': 'https://www.tiktok.com/legal/page/global/bc-policy/en',
};

const state = {
  me: null,             // GET /tiktok/me
  accounts: [],         // GET /tiktok/accounts
  creator: null,        // GET /tiktok/creator
  account: null,        // open_id
  vars: {},             // name -> value typed by the user
  rendered: {},         // POST /tiktok/preview
  durationSec: null,    // from the preview's metadata
  posting: false,
  serverProblems: {},   // field -> problems the server gave for the last post
  apps: null,           // GET /tiktok/apps
  reports: {},          // app id -> the last check report
  copied: false,        // the Redirect URL was copied
  jobs: [],             // GET /tiktok/jobs
};

async function api(method, path, body, headers) {
  const opts = { method, headers: Object.assign({ Accept: 'application/json' }, headers || {}),
    credentials: 'same-origin' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  return { status: res.status, data, headers: res.headers };
}

function show(el, on) { el.hidden = !on; }

function flash(text, kind) {
  const f = $('flash');
  f.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  f.setAttribute('aria-live', kind === 'error' ? 'assertive' : 'polite');
  f.textContent = text;
  f.className = kind || 'info';
  show(f, !!text);
}

// Where the page shows a problem about a field: next to it. The keys are
// the server's field names (error.fields); the page never shows them.
const FIELD_ERRORS = {
  video_url: ['video-url-error', 'video-url'],
  caption: ['caption-error', 'caption'],
  vars: ['vars-error', null],
  privacy: ['privacy-error', 'privacy'],
  comments: ['interactions-error', 'allow-comment'],
  duets: ['interactions-error', 'allow-duet'],
  stitches: ['interactions-error', 'allow-stitch'],
  ai_generated: ['ai-error', 'ai-generated'],
  brand_own: ['disclosure-error', 'brand-own'],
  brand_third_party: ['disclosure-error', 'brand-content'],
};

// Shows the problems of each field next to it: the server's (after a post
// was refused) and the Video URL's by the server's own rule while typing.
function renderFieldErrors() {
  const texts = {};
  const invalid = new Set();
  const put = (field, text) => {
    const where = FIELD_ERRORS[field];
    (texts[where[0]] = texts[where[0]] || []).push(text);
    if (where[1]) invalid.add(where[1]);
  };
  for (const [field, list] of Object.entries(state.serverProblems)) for (const t of list) put(field, t);
  for (const t of (state.rendered.field_problems && state.rendered.field_problems.video_url) || []) put('video_url', t);
  for (const id of new Set(Object.values(FIELD_ERRORS).map((w) => w[0]))) {
    const el = $(id);
    el.textContent = (texts[id] || []).join(' ');
    show(el, !!texts[id]);
  }
  for (const id of new Set(Object.values(FIELD_ERRORS).map((w) => w[1]).filter(Boolean))) {
    if (invalid.has(id)) $(id).setAttribute('aria-invalid', 'true'); else $(id).removeAttribute('aria-invalid');
  }
}

function errorText(data, status) {
  if (data && data.error) return data.error.message || data.error.code;
  return 'The app answered HTTP ' + status + '.';
}

// ------------------------------------------------------------ sign-in, accounts

async function start() {
  const q = new URLSearchParams(location.search);
  if (q.get('connect_error')) {
    flash('Connecting the TikTok account did not work: ' + (q.get('message') || q.get('connect_error')), 'error');
  } else if (q.get('connected')) {
    flash('Your TikTok account is connected.', 'ok');
  }
  if (q.toString()) history.replaceState(null, '', location.pathname);

  const me = await api('GET', '/tiktok/me');
  if (me.status === 401) {
    if (me.data && me.data.signin === 'standin') show($('signin'), true);
    else flash('You are not signed in. Sign in through the app\'s own sign-in, then open this page again.', 'error');
    return;
  }
  if (me.status !== 200) { flash(errorText(me.data, me.status), 'error'); return; }
  state.me = me.data;
  $('me').textContent = me.data.user + (me.data.workspace ? ' (' + me.data.workspace + ')' : '');
  show($('signout'), me.data.via === 'session');
  const ws = $('access-workspace');
  ws.disabled = !me.data.workspace;
  ws.parentElement.classList.toggle('disabled', ws.disabled);
  show($('workspace-note'), ws.disabled);
  if (me.data.workspace) ws.parentElement.lastChild.textContent = ' Anyone in this workspace (' + me.data.workspace + ')';
  show($('session'), true);
  await loadApps();
  await loadAccounts(q.get('connected'));
  await loadJobs();
}

// ------------------------------------------------------ your TikTok app (settings)

const ACCESS_TEXT = (a) => (a.access === 'workspace' ? 'Anyone in workspace ' + a.workspace
  : a.owner === (state.me && state.me.user) ? 'Only you' : 'Only ' + a.owner);

async function loadApps() {
  const r = await api('GET', '/tiktok/apps');
  if (r.status !== 200) { flash(errorText(r.data, r.status), 'error'); return; }
  state.apps = r.data;
  $('app-redirect').value = r.data.redirect_uri;
  const ul = $('apps');
  ul.textContent = '';
  for (const a of r.data.apps) ul.appendChild(appItem(a));
  // Connect with which app: the environment's (development), then the workspace's own.
  const sel = $('connect-app');
  sel.textContent = '';
  const choices = (r.data.default ? [r.data.default] : []).concat(r.data.apps);
  for (const a of choices) {
    const o = document.createElement('option');
    o.value = a.id;
    o.textContent = a.name || a.client_key;
    sel.appendChild(o);
  }
  if (r.data.apps.length) sel.value = r.data.apps[r.data.apps.length - 1].id;
  show($('connect-app-box'), choices.length > 1);
  if (!$('app-id').value) resetAppForm();
  renderSteps();
}

function appItem(a) {
  const li = document.createElement('li');
  li.dataset.app = a.id;
  const name = document.createElement('b');
  name.className = 'app-name';
  name.textContent = a.name || a.client_key;
  const meta = document.createElement('div');
  meta.className = 'muted small';
  meta.textContent = 'Client key ' + a.client_key + ' · Client secret ' + (a.secret_hint || '(none)') + ' · '
    + ACCESS_TEXT(a) + (a.audited ? ' · audited' : ' · not audited yet');
  const actions = document.createElement('div');
  actions.className = 'actions';
  const button = (text, label, fn) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'link';
    b.textContent = text;
    b.setAttribute('aria-label', label);
    b.addEventListener('click', () => fn(b));
    actions.appendChild(b);
    return b;
  };
  button('Check', 'Check ' + name.textContent, () => checkApp(a));
  button('Edit', 'Edit ' + name.textContent, () => editApp(a));
  button('Remove', 'Remove ' + name.textContent, (b) => removeApp(a, b));
  const report = document.createElement('ul');
  report.className = 'checklist';
  report.id = 'report-' + a.id;
  li.append(name, meta, actions, report);
  renderReport(a.id, report);
  return li;
}

function renderReport(id, ul) {
  const rep = state.reports[id];
  ul.textContent = '';
  if (!rep) return;
  for (const c of rep.checks) {
    const li = document.createElement('li');
    li.className = c.ok ? 'pass' : 'fail';
    li.textContent = c.message;
    ul.appendChild(li);
  }
}

async function checkApp(a) {
  flash('Checking ' + (a.name || a.client_key) + ' with TikTok…', 'info');
  const r = await api('POST', '/tiktok/apps/' + encodeURIComponent(a.id) + '/check');
  if (r.status !== 200) { flash('Could not check the app: ' + errorText(r.data, r.status), 'error'); return; }
  state.reports[a.id] = r.data;
  const ul = $('report-' + a.id);
  if (ul) renderReport(a.id, ul);
  flash(r.data.ok ? 'The app is set up right. Next: connect a TikTok account with it.'
    : 'The check found something to fix: see the app\'s list.', r.data.ok ? 'ok' : 'error');
  renderSteps();
}

function clearAppErrors() {
  for (const f of ['client-key', 'client-secret', 'redirect', 'access']) {
    show($('app-' + f + '-error'), false);
    const input = $('app-' + f) || $('app-access-only-me');
    if (input) input.removeAttribute('aria-invalid');
  }
  show($('app-problems'), false);
}

function resetAppForm() {
  $('app-id').value = '';
  $('app-name').value = '';
  $('app-client-key').value = '';
  $('app-client-secret').value = '';
  $('app-client-secret').placeholder = '';
  $('app-audited').checked = false;
  const ws = state.me && state.me.workspace;
  $('app-access-workspace').disabled = !ws;
  $(ws ? 'app-access-workspace' : 'app-access-only-me').checked = true;
  $('app-form-title').textContent = 'Add a TikTok app';
  $('app-save').textContent = 'Save';
  show($('app-cancel'), false);
  clearAppErrors();
}

function editApp(a) {
  resetAppForm();
  $('app-id').value = a.id;
  $('app-name').value = a.name || '';
  $('app-client-key').value = a.client_key;
  $('app-client-secret').placeholder = 'Leave empty to keep the saved one (' + (a.secret_hint || '') + ')';
  $('app-audited').checked = !!a.audited;
  $(a.access === 'workspace' ? 'app-access-workspace' : 'app-access-only-me').checked = true;
  $('app-form-title').textContent = 'Edit ' + (a.name || a.client_key);
  $('app-save').textContent = 'Save changes';
  show($('app-cancel'), true);
  $('app-client-key').focus();
}

const APP_FIELDS = { client_key: 'client-key', client_secret: 'client-secret', redirect_uri: 'redirect',
  access: 'access' };

async function saveApp(ev) {
  ev.preventDefault();
  clearAppErrors();
  const id = $('app-id').value;
  const body = {
    name: $('app-name').value.trim() || undefined,
    client_key: $('app-client-key').value.trim(),
    audited: $('app-audited').checked,
    access: $('app-access-workspace').checked ? 'workspace' : 'only_me',
  };
  const secret = $('app-client-secret').value.trim();
  if (secret || !id) body.client_secret = secret;
  $('app-save').disabled = true;
  const r = await api('POST', id ? '/tiktok/apps/' + encodeURIComponent(id) : '/tiktok/apps', body);
  $('app-save').disabled = false;
  if (r.status !== 200 && r.status !== 201) {
    const err = (r.data && r.data.error) || {};
    const items = err.problems || [errorText(r.data, r.status)];
    const ul = $('app-problems');
    ul.textContent = '';
    let first = null;
    items.forEach((p, i) => {
      const f = APP_FIELDS[err.fields && err.fields[i]];
      if (f) {
        $('app-' + f + '-error').textContent = p;
        show($('app-' + f + '-error'), true);
        const input = $('app-' + f) || $('app-access-only-me');
        input.setAttribute('aria-invalid', 'true');
        first = first || input;
        return;
      }
      const li = document.createElement('li');
      li.textContent = p;
      ul.appendChild(li);
    });
    show(ul, ul.children.length > 0);
    if (first) first.focus();
    return;
  }
  $('app-client-secret').value = '';
  flash('Saved ' + (r.data.name || r.data.client_key) + '. TikTok accepted its Client key and Client secret.', 'ok');
  resetAppForm();
  await loadApps();
}

async function removeApp(a, button) {
  // Two steps, no dialog: the first press asks, the second removes.
  if (button.dataset.confirm !== '1') {
    button.dataset.confirm = '1';
    button.textContent = 'Press again to remove';
    return;
  }
  const r = await api('DELETE', '/tiktok/apps/' + encodeURIComponent(a.id));
  if (r.status !== 200) { flash('Could not remove the app: ' + errorText(r.data, r.status), 'error'); return; }
  delete state.reports[a.id];
  flash('Removed ' + (a.name || a.client_key) + '. Accounts connected with it are not shown until it is added again.', 'ok');
  if ($('app-id').value === a.id) resetAppForm();
  await loadApps();
  await loadAccounts(null);
}

async function copyRedirect() {
  const input = $('app-redirect');
  let ok = false;
  try {
    await navigator.clipboard.writeText(input.value);
    ok = true;
  } catch (e) {
    input.select();
    try { ok = document.execCommand('copy'); } catch (e2) { ok = false; }
  }
  state.copied = ok;
  $('copy-status').textContent = ok ? 'Copied. Paste it as a Redirect URI in your app\'s Login Kit settings.'
    : 'Select the Redirect URL and copy it (Ctrl+C).';
  renderSteps();
}

// The block's order: each step done, the next one said in words.
function renderSteps() {
  if (!state.apps) return;
  const configured = state.apps.apps.length > 0 || !!state.apps.default;
  const connected = state.accounts.length > 0;
  // a connected account shows the app worked, also after the page was reloaded
  const checked = Object.values(state.reports).some((r) => r.ok) || !!state.apps.default || connected;
  const done = { configure: configured, redirect: configured && (state.copied || checked), check: checked,
    connect: connected, post: state.jobs.some((j) => j.state === 'published' || j.state === 'inbox') };
  let current = null;
  for (const li of $('steps').children) {
    const step = li.dataset.step;
    li.classList.toggle('done', done[step]);
    li.classList.toggle('current', !done[step] && !current);
    if (!done[step] && !current) current = step;
  }
  const NEXT = {
    configure: 'First add your TikTok app: enter its Client key and Client secret below and save.',
    redirect: 'Next: copy the Redirect URL into your app\'s Login Kit settings on TikTok for Developers.',
    check: 'Next: check the app (the Check button next to it).',
    connect: 'Next: connect a TikTok account with your app.',
    post: 'Next: fill in the post below.',
  };
  $('next-step').textContent = current ? NEXT[current] : 'All set.';
  $('connect').disabled = !configured;
}

function whoCanUse(a) {
  if (a.access === 'workspace') return 'Anyone in workspace ' + a.workspace;
  return a.owner === (state.me && state.me.user) ? 'Only you' : 'Only ' + a.owner;
}

function day(epoch) {
  return new Date(epoch * 1000).toLocaleDateString('en-GB', { day: 'numeric', month: 'short', year: 'numeric' });
}

// The user's active connections: pick the one to post with, or disconnect one.
async function loadAccounts(wanted) {
  const acc = await api('GET', '/tiktok/accounts');
  if (acc.status !== 200) { flash(errorText(acc.data, acc.status), 'error'); return; }
  const list = acc.data.accounts;
  state.accounts = list;
  const ul = $('accounts');
  ul.textContent = '';
  show($('no-connections'), list.length === 0);
  show($('accounts-box'), list.length > 0);
  renderSteps();
  if (list.length === 0) {
    state.account = null;
    show($('creator'), false);
    show($('post-form'), false);
    return;
  }
  const pick = list.some((a) => a.open_id === wanted) ? wanted
    : list.some((a) => a.open_id === state.account) ? state.account : list[0].open_id;
  for (const a of list) {
    const li = document.createElement('li');
    const label = document.createElement('label');
    label.className = 'account';
    const radio = document.createElement('input');
    radio.type = 'radio';
    radio.name = 'account';
    radio.value = a.open_id;
    radio.checked = a.open_id === pick;
    radio.addEventListener('change', () => { if (radio.checked) loadCreator(a.open_id); });
    const img = document.createElement('img');
    img.alt = '';
    img.width = 40;
    img.height = 40;
    if (a.avatar_url) img.src = a.avatar_url; else img.hidden = true;
    const text = document.createElement('span');
    const name = document.createElement('b');
    name.className = 'nickname';
    name.textContent = a.nickname || 'TikTok account ' + a.open_id;
    const meta = document.createElement('span');
    meta.className = 'muted small meta';
    meta.textContent = whoCanUse(a) + ' · connected until ' + day(a.refresh_expires_at)
      + (a.app ? ' · app: ' + a.app.name : '');
    text.append(name, document.createElement('br'), meta);
    label.append(radio, img, text);
    li.appendChild(label);
    if (a.yours) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'link disconnect';
      b.textContent = 'Disconnect';
      b.setAttribute('aria-label', 'Disconnect ' + name.textContent);
      b.addEventListener('click', () => disconnect(a, name.textContent));
      li.appendChild(b);
    }
    ul.appendChild(li);
  }
  await loadCreator(pick);
}

async function disconnect(a, name) {
  const r = await api('POST', '/tiktok/accounts/' + encodeURIComponent(a.open_id) + '/disconnect');
  if (r.status !== 200) { flash('Could not disconnect ' + name + ': ' + errorText(r.data, r.status), 'error'); return; }
  flash('Disconnected ' + name + '. TikTok no longer lets this app post to it.', 'ok');
  if (state.account === a.open_id) state.account = null;
  await loadAccounts(null);
}

// The creator's current settings, read fresh each time the page is shown.
async function loadCreator(openId) {
  state.account = openId;
  show($('post-form'), false);
  show($('creator-error'), false);
  const r = await api('GET', '/tiktok/creator?account=' + encodeURIComponent(openId));
  if (r.status !== 200) {
    // Content Sharing Guidelines 1b: when TikTok says the creator cannot
    // post now, stop here and ask them to try later.
    $('creator-error').textContent = 'TikTok does not let this account post right now: '
      + errorText(r.data, r.status) + ' Please try again later.';
    show($('creator-error'), true);
    show($('creator'), false);
    return;
  }
  state.creator = r.data;
  const c = r.data.creator;
  $('nickname').textContent = c.nickname || c.username || openId;
  $('username').textContent = c.username ? '@' + c.username : '';
  const avatar = $('avatar');
  if (c.avatar_url) { avatar.src = c.avatar_url; show(avatar, true); } else { show(avatar, false); }
  show($('creator'), true);
  fillForm();
  show($('post-form'), true);
  update();
}

// ------------------------------------------------------------------- the form

function fillForm() {
  const c = state.creator.creator;
  const sel = $('privacy');
  while (sel.options.length > 1) sel.remove(1);
  for (const p of c.privacy_level_options) {
    const o = document.createElement('option');
    o.value = p;
    o.textContent = state.creator.privacy_labels[p] || p;
    sel.appendChild(o);
  }
  sel.selectedIndex = 0;          // the placeholder: no default (guideline 2b)
  show($('unaudited-note'), !!state.creator.unaudited);
  for (const [id, off] of [['allow-comment', c.comment_disabled], ['allow-duet', c.duet_disabled],
    ['allow-stitch', c.stitch_disabled]]) {
    $(id).checked = false;         // off by default (guideline 2c)
    $(id).dataset.creatorDisabled = off ? '1' : '';
  }
}

function disclosureChoice() {
  const on = $('disclose').checked;
  const own = on && $('brand-own').checked;
  const third = on && $('brand-content').checked;
  return { on, own, third };
}

function update() {
  if (!state.creator) return;
  const c = state.creator.creator;
  const privacy = $('privacy').value;
  const d = disclosureChoice();
  const selfOnly = privacy === 'SELF_ONLY';

  // Interactions: greyed where the creator turned them off; duet and stitch
  // also for "Only me", where TikTok does not allow them.
  const notes = [];
  for (const [id, name] of [['allow-comment', 'Comment'], ['allow-duet', 'Duet'], ['allow-stitch', 'Stitch']]) {
    const box = $(id);
    const byCreator = box.dataset.creatorDisabled === '1';
    const bySelf = selfOnly && id !== 'allow-comment';
    box.disabled = byCreator || bySelf;
    if (box.disabled) box.checked = false;
    box.parentElement.classList.toggle('disabled', box.disabled);
    box.parentElement.title = byCreator ? name + ' is turned off in this account\'s TikTok settings.'
      : bySelf ? name + ' is not available for videos only you can see.' : '';
    if (byCreator) notes.push(name + ' is turned off in this account\'s TikTok settings.');
  }
  if (selfOnly) notes.push('Duet and Stitch are not available for videos only you can see.');
  $('interaction-note').textContent = notes.join(' ');
  show($('interaction-note'), notes.length > 0);

  // Disclosure: branded content cannot be private, in both directions.
  show($('disclose-box'), d.on);
  const branded = $('brand-content');
  branded.disabled = selfOnly;
  if (selfOnly) branded.checked = false;
  branded.parentElement.classList.toggle('disabled', selfOnly);
  branded.parentElement.title = selfOnly ? BRANDED_PRIVATE : '';
  show($('branded-private'), d.on && selfOnly);
  const choice = disclosureChoice();
  for (const o of $('privacy').options) {
    if (o.value === 'SELF_ONLY') {
      o.disabled = choice.third;
      o.title = choice.third ? BRANDED_PRIVATE : '';
    }
  }
  const key = choice.own && choice.third ? 'both' : choice.third ? 'branded_content'
    : choice.own ? 'your_brand' : 'none';
  const texts = state.creator.disclosure[key];
  const labelEl = $('disclosure-label');
  if (texts.label) {
    labelEl.textContent = 'Your video will be labeled as “' + texts.label + '”.';
  }
  show(labelEl, !!texts.label);
  const missing = choice.on && !choice.own && !choice.third;
  show($('disclosure-missing'), missing);
  renderDeclaration(texts.declaration);

  // Duration against the creator's maximum (guideline 1c).
  const max = c.max_video_post_duration_sec;
  const tooLong = state.durationSec != null && max && state.durationSec > max;
  $('duration-note').textContent = tooLong ? 'This video is ' + Math.round(state.durationSec)
    + ' seconds long; this account can post videos of up to ' + max + ' seconds.' : '';
  show($('duration-note'), !!tooLong);

  const count = state.rendered.caption_utf16 != null ? state.rendered.caption_utf16 : $('caption').value.length;
  $('caption-count').textContent = String(count);
  const missingVars = (state.rendered.variables || []).filter((n) => !(state.vars[n] || '').length);

  renderFieldErrors();
  const urlProblems = (state.rendered.field_problems && state.rendered.field_problems.video_url) || [];
  const button = $('post-button');
  let why = '';
  if (state.posting) why = 'Posting…';
  else if (!$('video-url').value.trim()) why = 'Enter the Video URL.';
  else if (urlProblems.length) why = 'The Video URL needs fixing (see the message under it).';
  else if (missingVars.length) why = 'Fill in the variables: ' + missingVars.map((n) => '{{' + n + '}}').join(', ') + '.';
  else if (!privacy) why = 'Choose who can view this video.';
  else if (missing) why = MISSING_DISCLOSURE;
  else if (tooLong) why = 'The video is too long for this account.';
  else if (count > 2200) why = 'The caption is too long.';
  button.disabled = why !== '';
  // Why Post cannot be pressed is visible text next to it, not a tooltip.
  $('post-why').textContent = why && !state.posting ? 'Post is not available yet: ' + why : why;
}

function renderDeclaration(text) {
  const p = $('declaration');
  p.textContent = '';
  let rest = text;
  while (rest.length) {
    let first = null;
    for (const phrase of Object.keys(LINK_TEXT)) {
      const i = rest.indexOf(phrase);
      if (i >= 0 && (!first || i < first.i)) first = { i, phrase };
    }
    if (!first) { p.appendChild(document.createTextNode(rest)); break; }
    p.appendChild(document.createTextNode(rest.slice(0, first.i)));
    const a = document.createElement('a');
    a.href = LINK_TEXT[first.phrase];
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.textContent = first.phrase;
    p.appendChild(a);
    rest = rest.slice(first.i + first.phrase.length);
  }
}

// ---------------------------------------------------- variables and preview

let previewTimer = null;
function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(refreshPreview, 250);
}

async function refreshPreview() {
  const body = { caption: $('caption').value, video_url: $('video-url').value.trim(), vars: state.vars };
  const r = await api('POST', '/tiktok/preview', body);
  if (r.status !== 200) return;
  state.rendered = r.data;
  renderVars(r.data.variables);
  $('caption-preview').textContent = r.data.caption != null && r.data.variables.length ? '→ ' + r.data.caption : '';
  const url = r.data.video_url;
  const video = $('preview');
  const urlOk = !(r.data.field_problems && r.data.field_problems.video_url);
  if (url && urlOk && /^https:\/\//.test(url)) {
    if (video.dataset.src !== url) {
      video.dataset.src = url;
      state.durationSec = null;
      video.src = url;
    }
    show(video, true);
  } else {
    video.removeAttribute('src');
    video.dataset.src = '';
    state.durationSec = null;
    show(video, false);
  }
  update();
}

function renderVars(names) {
  const box = $('vars');
  const have = new Map(Array.from(box.querySelectorAll('input')).map((i) => [i.name, i.parentElement]));
  for (const [name, label] of have) {
    if (!names.includes(name)) { label.remove(); have.delete(name); }
  }
  for (const name of names) {
    if (have.has(name)) continue;
    const label = document.createElement('label');
    label.className = 'var';
    const code = document.createElement('code');
    code.textContent = '{{' + name + '}}';
    const input = document.createElement('input');
    input.name = name;
    input.dataset.var = name;
    input.value = state.vars[name] || '';
    input.addEventListener('input', () => { state.vars[name] = input.value; schedulePreview(); update(); });
    label.appendChild(code);
    label.appendChild(input);
    have.set(name, label);
    box.appendChild(label);
  }
  // The fields in the order the templates use them (Video URL first), so
  // that Tab goes through them in reading order.
  const now = Array.from(box.children);
  if (names.some((n, i) => now[i] !== have.get(n))) for (const n of names) box.appendChild(have.get(n));
  for (const k of Object.keys(state.vars)) if (!names.includes(k)) delete state.vars[k];
  show($('vars-box'), names.length > 0);
}

// ------------------------------------------------------------- post + status

async function submit(ev) {
  ev.preventDefault();
  update();
  if ($('post-button').disabled) return;
  const d = disclosureChoice();
  const body = {
    account: state.account,
    video_url: $('video-url').value.trim(),
    caption: $('caption').value,
    vars: state.vars,
    privacy: $('privacy').value,
    comments: $('allow-comment').checked,
    duets: $('allow-duet').checked,
    stitches: $('allow-stitch').checked,
    brand_own: d.own,
    brand_third_party: d.third,
    ai_generated: $('ai-generated').checked,
    relay: $('relay').value,
  };
  state.posting = true;
  state.serverProblems = {};
  update();
  show($('problems'), false);
  // One key per press of Post: a repeated request (a double click, a retry
  // after a lost answer) names the same job on the server, never a second post.
  const key = (self.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : String(Date.now()) + '-' + Math.random().toString(16).slice(2);
  const r = await api('POST', '/tiktok/posts', body, { 'Idempotency-Key': key });
  if (r.status !== 202) {
    state.posting = false;
    const err = (r.data && r.data.error) || {};
    const items = err.problems || [errorText(r.data, r.status)];
    const ul = $('problems');
    ul.textContent = '';
    state.serverProblems = {};
    items.forEach((p, i) => {
      const field = err.fields && err.fields[i];
      if (field && FIELD_ERRORS[field]) {
        (state.serverProblems[field] = state.serverProblems[field] || []).push(p);
        return;
      }
      const li = document.createElement('li');
      li.textContent = p;
      ul.appendChild(li);
    });
    show(ul, ul.children.length > 0);
    update();
    const first = document.querySelector('[aria-invalid="true"]');
    if (first) first.focus();
    return;
  }
  $('publish-id').textContent = r.data.publish_id || '';
  setStatus(r.data.status || 'QUEUED', null);
  show($('status-box'), true);
  $('status-box').scrollIntoView({ behavior: 'smooth' });
  loadJobs();
  poll(r.data.job.id, 1000);
}

function setStatus(status, data) {
  const el = $('post-status');
  el.dataset.status = status;
  let text = STATUS_TEXT[status] || status;
  if (status === 'FAILED' && data && data.error) text += ' ' + data.error.message;
  if (status === 'PUBLISH_COMPLETE' && data && data.post_ids && data.post_ids.length) {
    text += ' Post id ' + data.post_ids.join(', ') + '.';
  }
  if (!FINAL.has(status)) text += ' This may take a few minutes.';
  el.textContent = text;
  el.className = status === 'FAILED' ? 'error' : status === 'PUBLISH_COMPLETE' ? 'ok' : '';
}

// A job's state in TikTok's words for the status line.
function jobStatus(j) {
  if (j.state === 'published') return 'PUBLISH_COMPLETE';
  if (j.state === 'inbox') return 'SEND_TO_USER_INBOX';
  if (j.state === 'failed' || j.state === 'cancelled' || j.state === 'ambiguous') return 'FAILED';
  return j.status || 'QUEUED';
}

// Follows the post's job on the server until it is final.
async function poll(id, delay) {
  await new Promise((res) => setTimeout(res, delay));
  const r = await api('GET', '/tiktok/jobs/' + encodeURIComponent(id));
  let next = Math.min(delay * 1.5, 5000);
  if (r.status === 200) {
    r.data.status = jobStatus(r.data);
    if (r.data.publish_id) $('publish-id').textContent = r.data.publish_id;
    setStatus(r.data.status, r.data);
    const prog = $('post-progress');
    if (r.data.status === 'PROCESSING_DOWNLOAD' && r.data.downloaded_bytes) {
      prog.removeAttribute('value');
    }
    show(prog, !FINAL.has(r.data.status));
    if (FINAL.has(r.data.status)) {
      state.posting = false;
      update();
      loadJobs();
      return;
    }
  } else if (r.status === 429 || r.status === 503) {
    next = Math.max(next, 1000 * (parseInt(r.headers.get('Retry-After') || '5', 10) || 5));
  } else {
    $('post-status').textContent = 'Could not read the status: ' + errorText(r.data, r.status) + ' Retrying…';
  }
  poll(id, next);
}

// ------------------------------------------------------------- recent posts

const JOB_TEXT = {
  queued: 'Waiting to be sent', running: 'Being sent to TikTok', processing: 'TikTok is processing it',
  published: 'Posted', inbox: 'Sent to the TikTok inbox', failed: 'Failed', cancelled: 'Cancelled',
  ambiguous: 'Unclear whether TikTok created it',
};
let jobsTimer = null;

async function loadJobs() {
  clearTimeout(jobsTimer);
  const r = await api('GET', '/tiktok/jobs');
  if (r.status !== 200) return;
  state.jobs = r.data.jobs;
  const ul = $('jobs');
  ul.textContent = '';
  const now = Date.now() / 1000;
  for (const j of r.data.jobs) {
    const li = document.createElement('li');
    li.dataset.state = j.state;
    const st = document.createElement('span');
    st.className = 'state';
    st.textContent = j.state === 'queued' && j.run_at > now + 1
      ? 'Scheduled for ' + new Date(j.run_at * 1000).toLocaleString('en-GB') : JOB_TEXT[j.state] || j.state;
    const acc = state.accounts.find((a) => a.open_id === j.open_id);
    const meta = document.createElement('span');
    meta.className = 'muted small';
    meta.textContent = ' · ' + new Date(j.created_at * 1000).toLocaleString('en-GB')
      + (acc ? ' · ' + (acc.nickname || 'TikTok account') : '');
    li.append(st, meta);
    if (j.state === 'queued' && !j.publish_id) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'link';
      b.textContent = 'Cancel';
      b.setAttribute('aria-label', 'Cancel this post');
      b.addEventListener('click', async () => {
        const c = await api('POST', '/tiktok/jobs/' + encodeURIComponent(j.id) + '/cancel');
        if (c.status !== 200) flash('Could not cancel the post: ' + errorText(c.data, c.status), 'error');
        else flash('The post was cancelled; nothing was sent to TikTok.', 'ok');
        loadJobs();
      });
      li.appendChild(b);
    }
    if (j.error && j.final) {
      const e = document.createElement('div');
      e.className = 'error small';
      e.textContent = j.error.message;
      li.appendChild(e);
    }
    ul.appendChild(li);
  }
  show($('jobs-box'), r.data.jobs.length > 0);
  renderSteps();
  if (r.data.jobs.some((j) => !j.final)) jobsTimer = setTimeout(loadJobs, 3000);
}

// ------------------------------------------------------------------ wiring

document.addEventListener('DOMContentLoaded', () => {
  for (const id of ['privacy', 'allow-comment', 'allow-duet', 'allow-stitch', 'disclose', 'brand-own',
    'brand-content', 'ai-generated']) {
    $(id).addEventListener('change', () => { state.serverProblems = {}; update(); });
  }
  for (const id of ['video-url', 'caption']) {
    $(id).addEventListener('input', () => { state.serverProblems = {}; update(); schedulePreview(); });
  }
  $('preview').addEventListener('loadedmetadata', () => {
    state.durationSec = $('preview').duration;
    update();
  });
  $('preview').addEventListener('error', () => { state.durationSec = null; update(); });
  $('post-form').addEventListener('submit', submit);
  // Connect is a navigation, not a form post: the page's CSP allows forms
  // to post only to this app (form-action 'self'), and /tiktok/connect
  // redirects to TikTok.
  $('connect-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const access = new FormData($('connect-form')).get('access') || 'only_me';
    const app = $('connect-app').value;
    location.assign('/tiktok/connect?access=' + encodeURIComponent(access)
      + (app ? '&app=' + encodeURIComponent(app) : ''));
  });
  $('app-form').addEventListener('submit', saveApp);
  $('app-cancel').addEventListener('click', resetAppForm);
  $('copy-redirect').addEventListener('click', copyRedirect);
  start().catch((e) => flash('The page could not load: ' + e.message, 'error'));
});
