// First-load benchmark: what a browser with an empty cache transfers to show
// each console page, and how long until the page is interactive (hydrated),
// in apt's headless Chromium against a running `ritma up` stack
// (app/scripts/bench-live.sh starts one and runs this after the live-path run).
//
// Per page, a fresh browser context (empty cache) signs in once, then loads
// the page cold `RITMA_BENCH_LOAD_ROUNDS` times (default 5). Figures:
//   transferred  bytes over the wire (navigation + every resource, compressed),
//   wasm         the WASM module's transferred bytes (gzip or brotli),
//   interactive  navigation start → `body[data-hydrated]` set by the hydrated app.
// Printed, and written as JSON to $RITMA_BENCH_LOAD_OUT (default target/bench/load.json).
//
// Inputs: RITMA_STACK_FILE, CHROMIUM.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
const STACK_FILE = process.env.RITMA_STACK_FILE || path.join(ROOT, '.ritma/dev/stack.json');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ROUNDS = Number(process.env.RITMA_BENCH_LOAD_ROUNDS || 5);
const OUT = process.env.RITMA_BENCH_LOAD_OUT || path.join(TARGET, 'bench/load.json');
const PAGES = ['/', '/nodes', '/usage', '/audit', '/alerts'];

const stack = JSON.parse(fs.readFileSync(STACK_FILE, 'utf8'));
const base = stack.console_url.replace(/\/$/, '');
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)];

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking'],
});

async function signedInContext() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  // Note the instant the hydrated app marks the body (no polling delay).
  await context.addInitScript(() => {
    new MutationObserver((_, observer) => {
      if (document.body?.dataset.hydrated === 'true') {
        window.__hydratedAt = performance.now();
        observer.disconnect();
      }
    }).observe(document, { attributes: true, subtree: true, attributeFilter: ['data-hydrated'] });
  });
  const page = await context.newPage();
  await page.goto(`${base}/login`);
  await page.fill('#token', stack.admin_token);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('button[type=submit]')]);
  await page.close();
  return context;
}

async function coldLoad(context, pathname) {
  // A new page with the HTTP cache disabled: every byte comes over the wire.
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await page.goto(`${base}${pathname}`);
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 60000 });
  const figures = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const resources = performance.getEntriesByType('resource');
    const hydratedAt = window.__hydratedAt ?? performance.now();
    const wasm = resources.filter((r) => r.name.endsWith('.wasm'));
    return {
      transferred: nav.transferSize + resources.reduce((s, r) => s + r.transferSize, 0),
      wasm: wasm.reduce((s, r) => s + r.transferSize, 0),
      wasm_decoded: wasm.reduce((s, r) => s + r.decodedBodySize, 0),
      html_ms: nav.responseEnd,
      interactive_ms: hydratedAt,
    };
  });
  await page.close();
  return figures;
}

const results = {};
console.log(`first load, empty cache, ${ROUNDS} rounds per page (medians)`);
console.log('page       transferred KiB   wasm KiB (decoded)   html ms   interactive ms');
for (const pathname of PAGES) {
  const context = await signedInContext();
  const rounds = [];
  for (let i = 0; i < ROUNDS; i++) rounds.push(await coldLoad(context, pathname));
  await context.close();
  const m = (k) => median(rounds.map((r) => r[k]));
  results[pathname] = {
    transferred_bytes: m('transferred'),
    wasm_bytes: m('wasm'),
    wasm_decoded_bytes: m('wasm_decoded'),
    html_ms: Math.round(m('html_ms')),
    interactive_ms: Math.round(m('interactive_ms')),
    rounds,
  };
  const r = results[pathname];
  console.log(
    `${pathname.padEnd(10)} ${(r.transferred_bytes / 1024).toFixed(0).padStart(15)} ` +
      `${(r.wasm_bytes / 1024).toFixed(0).padStart(10)} (${(r.wasm_decoded_bytes / 1024).toFixed(0)})`.padEnd(21) +
      `${String(r.html_ms).padStart(9)} ${String(r.interactive_ms).padStart(16)}`,
  );
}
await browser.close();
fs.mkdirSync(path.dirname(OUT), { recursive: true });
fs.writeFileSync(OUT, JSON.stringify({ benchmark: 'load', at: new Date().toISOString(), pages: results }, null, 2));
console.log(`written ${OUT}`);
