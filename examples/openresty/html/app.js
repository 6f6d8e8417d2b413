// The posting page of the lua-tiktok OpenResty example. Plain JavaScript:
// it reads the creator's current settings from GET /tiktok/creator and
// applies TikTok's Content Sharing Guidelines to the form (privacy chosen by
// hand from the creator's own options, interactions off by default and greyed
// out where the creator disabled them, duet/stitch greyed for "Only me", the
// commercial-content disclosure and its label, the consent sentence), then
// posts with POST /tiktok/posts and polls GET /tiktok/posts/<id>.
'use strict';

const $ = (id) => document.getElementById(id);
const FINAL = new Set(['PUBLISH_COMPLETE', 'SEND_TO_USER_INBOX', 'FAILED']);
const STATUS_TEXT = {
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
};

async function api(method, path, body) {
  const opts = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
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
  await loadAccounts(q.get('connected'));
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
    meta.textContent = whoCanUse(a) + ' · connected until ' + day(a.refresh_expires_at);
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
  };
  state.posting = true;
  state.serverProblems = {};
  update();
  show($('problems'), false);
  const r = await api('POST', '/tiktok/posts', body);
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
  $('publish-id').textContent = r.data.publish_id;
  setStatus(r.data.status, null);
  show($('status-box'), true);
  $('status-box').scrollIntoView({ behavior: 'smooth' });
  poll(r.data.publish_id, 1000);
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

async function poll(id, delay) {
  await new Promise((res) => setTimeout(res, delay));
  const r = await api('GET', '/tiktok/posts/' + encodeURIComponent(id) + '?account='
    + encodeURIComponent(state.account));
  let next = Math.min(delay * 1.5, 5000);
  if (r.status === 200) {
    setStatus(r.data.status, r.data);
    const prog = $('post-progress');
    if (r.data.status === 'PROCESSING_DOWNLOAD' && r.data.downloaded_bytes) {
      prog.removeAttribute('value');
    }
    show(prog, !FINAL.has(r.data.status));
    if (FINAL.has(r.data.status)) {
      state.posting = false;
      update();
      return;
    }
  } else if (r.status === 429 || r.status === 503) {
    next = Math.max(next, 1000 * (parseInt(r.headers.get('Retry-After') || '5', 10) || 5));
  } else {
    $('post-status').textContent = 'Could not read the status: ' + errorText(r.data, r.status) + ' Retrying…';
  }
  poll(id, next);
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
    location.assign('/tiktok/connect?access=' + encodeURIComponent(access));
  });
  start().catch((e) => flash('The page could not load: ' + e.message, 'error'));
});
