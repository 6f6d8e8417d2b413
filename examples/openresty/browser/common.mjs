// common.mjs: what the example page's browser tests share: their required
// settings, the list of checks, Debian's chromium driven by playwright-core
// (no browser download; the flags this machine's closed network needs),
// screenshots, and the one JSON outcome line with the exit status.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const TIMEOUT = 30000;

// A setting from the environment; the test stops (exit 2) without it.
export const need = (name) => {
  const v = process.env[name];
  if (!v) { console.error(`browser test: ${name} is not set`); process.exit(2); }
  return v;
};

// run({ shots, failureShot, clipboardOrigin }, async ({ page, context, check, shot }) => fields)
// launches chromium, runs the test body, prints { ok, ...fields, checks }
// (or { ok: false, error, url, checks } with a failure screenshot) and exits.
export async function run(opts, body) {
  const checks = [];
  const check = (cond, what) => {
    if (!cond) throw new Error('check failed: ' + what);
    checks.push(what);
  };
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tiktok-example-chromium-'));
  fs.mkdirSync(opts.shots, { recursive: true });
  let context;
  let page;
  let exitCode = 1;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      // The sandbox's consent page and media use its throwaway CA.
      ignoreHTTPSErrors: true,
      viewport: { width: 900, height: 1300 },
    });
    if (opts.clipboardOrigin) {
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: opts.clipboardOrigin });
    }
    page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    const shot = (name, locator) => (locator || page).screenshot(
      locator ? { path: path.join(opts.shots, name) } : { path: path.join(opts.shots, name), fullPage: true });
    const fields = await body({ page, context, check, shot });
    console.log(JSON.stringify({ ok: true, ...fields, checks }));
    exitCode = 0;
  } catch (e) {
    if (page) {
      try {
        await page.screenshot({ path: path.join(opts.shots, opts.failureShot), fullPage: true });
      } catch (_) { /* none */ }
    }
    console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e), url: page ? page.url() : null, checks }));
  } finally {
    if (context) await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.exit(exitCode);
}
