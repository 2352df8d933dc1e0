// Browser tests of the charts (issue 19, item 3) in apt's headless Chromium, against
// the stack of `ritma up`: the dashboard's activity charts with range and tenant, the
// node page's events timeline, the usage page's daily charts; their accessibility
// (SVG title and description, a table view); a refresh when live events arrive; clear
// refusals of bad parameters; and no drawing code in the WASM bundle.
//
// Known rollups are written straight into the stack's database (psql, the stack
// file's database_url) under a tenant of their own, so the figures are exact while
// the demo nodes keep reporting under theirs.
//
// Inputs (environment): RITMA_STACK_FILE, CARGO_TARGET_DIR, RITMA_E2E_PROFILE, CHROMIUM,
// as for console.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { launchChromium, signIn, waitFor } from './helpers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
const STACK_FILE = process.env.RITMA_STACK_FILE || path.join(ROOT, '.ritma/dev/stack.json');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = path.join(ROOT, 'tests/output');
// A tenant only these tests write to.
const TENANT = `e2e-charts-${Date.now().toString(36)}`;

let stack;
let base;
let context;
let page;
const spawned = [];

const countOf = (text) => Number(text.trim().replace(/,/g, ''));

function psql(sql) {
  const r = spawnSync('psql', [stack.database_url, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, `psql: ${r.stderr}`);
  return r.stdout.trim();
}

// Rollups of TENANT `hoursAgo` hours back (whole hours, as the ingest writes them).
function seed(hoursAgo, { decisions = 0, dig = 0, allow = 0, deny = 0, throttle = 0, isolate = 0 }) {
  const hour = `date_trunc('hour', now()) - interval '${hoursAgo} hours'`;
  psql(`INSERT INTO usage_hourly (org_id, tenant_id, hour, decisions, dig_files)
        VALUES ('${stack.org}', '${TENANT}', ${hour}, ${decisions}, ${dig})
        ON CONFLICT (org_id, tenant_id, hour) DO UPDATE
          SET decisions = usage_hourly.decisions + EXCLUDED.decisions,
              dig_files = usage_hourly.dig_files + EXCLUDED.dig_files;
        INSERT INTO enforcement_tenant_hourly
          (org_id, tenant_id, hour, allow_count, deny_count, throttle_count, isolate_count)
        VALUES ('${stack.org}', '${TENANT}', ${hour}, ${allow}, ${deny}, ${throttle}, ${isolate})
        ON CONFLICT (org_id, tenant_id, hour) DO UPDATE
          SET allow_count = enforcement_tenant_hourly.allow_count + EXCLUDED.allow_count,
              deny_count = enforcement_tenant_hourly.deny_count + EXCLUDED.deny_count,
              throttle_count = enforcement_tenant_hourly.throttle_count + EXCLUDED.throttle_count,
              isolate_count = enforcement_tenant_hourly.isolate_count + EXCLUDED.isolate_count;`);
}

async function shot(name) {
  fs.mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, `charts-${name}.png`), fullPage: true });
}

async function hydrated() {
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30000 });
}

// The table view of chart `id`: its header and rows as text.
async function table(id) {
  return page.$eval(`[data-testid="chart-table-${id}"]`, (t) => ({
    head: [...t.querySelectorAll('thead th')].map((th) => th.textContent.trim()),
    rows: [...t.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((c) => c.textContent.trim())),
  }));
}

// The sum of column `col` (by header) of chart `id`'s table.
async function columnTotal(id, col) {
  const t = await table(id);
  const i = t.head.indexOf(col);
  assert.ok(i > 0, `chart ${id} has a ${col} column: ${t.head}`);
  return t.rows.reduce((sum, r) => sum + countOf(r[i]), 0);
}

// Chart `id` is an accessible image: role, a title and a description it is labelled by.
async function assertAccessible(id) {
  const svg = `[data-testid="chart-${id}"] svg`;
  await page.waitForSelector(svg, { timeout: 15000 });
  const a = await page.$eval(svg, (s) => ({
    role: s.getAttribute('role'),
    labelledby: (s.getAttribute('aria-labelledby') || '').split(' ').filter(Boolean),
    title: s.querySelector(':scope > title')?.textContent || '',
    desc: s.querySelector(':scope > desc')?.textContent || '',
    labels: (s.getAttribute('aria-labelledby') || '').split(' ').filter(Boolean)
      .map((i) => document.getElementById(i)?.textContent || ''),
  }));
  assert.equal(a.role, 'img', `${id} is an image`);
  assert.equal(a.labelledby.length, 2, `${id} is labelled by its title and description`);
  assert.ok(a.title && a.desc, `${id} has a title and a description`);
  assert.deepEqual(a.labels, [a.title, a.desc]);
  assert.ok(await page.$(`[data-testid="chart-${id}"] details summary`), `${id} has a table view`);
  return a;
}

function nodeCommand() {
  for (const profile of [process.env.RITMA_E2E_PROFILE, 'debug', 'release'].filter(Boolean)) {
    const cli = path.join(TARGET, profile, 'ritma');
    if (fs.existsSync(cli)) return [cli, ['node']];
  }
  return null;
}

const api = (p, init = {}) =>
  fetch(`${stack.api_url}${p}`, {
    ...init,
    headers: { authorization: `Bearer ${stack.admin_token}`, 'content-type': 'application/json' },
  });

before(async () => {
  stack = JSON.parse(fs.readFileSync(STACK_FILE, 'utf8'));
  assert.ok(stack.console_url, 'the stack runs a console');
  assert.ok(stack.database_url, 'the stack file names its database');
  base = stack.console_url.replace(/\/$/, '');
  await waitFor(async () => (await fetch(`${base}/healthz`)).ok, 20000, `console at ${base}`);
  context = await launchChromium(chromium, CHROMIUM);
  page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => console.error('[browser error]', e.message));
  await signIn(page, base, stack.admin_token);
  // This hour and three days back.
  seed(0, { decisions: 1200, dig: 3, allow: 40, deny: 7, throttle: 2, isolate: 1 });
  seed(72, { decisions: 800, dig: 1, allow: 10, deny: 3 });
});

after(async () => {
  await context?.close().catch(() => {});
  for (const p of spawned) p.kill('SIGTERM');
  if (stack?.database_url) {
    psql(`DELETE FROM usage_hourly WHERE tenant_id = '${TENANT}';
          DELETE FROM enforcement_tenant_hourly WHERE tenant_id = '${TENANT}';`);
  }
});

test('the dashboard charts a tenant over 24 hours and 7 days, accessibly', async () => {
  await page.goto(`${base}/?tenant=${TENANT}`);
  await hydrated();
  const scope = '[data-testid=activity-scope]';
  await page.waitForSelector(`${scope}[data-tenant="${TENANT}"][data-range="24h"]`);
  for (const id of ['activity-decisions', 'activity-dig-files', 'activity-enforcement']) {
    const a = await assertAccessible(id);
    assert.ok(a.desc.includes(`tenant ${TENANT}`), `${id} says whose data: ${a.desc}`);
  }
  const enforcement = await table('activity-enforcement');
  assert.deepEqual(enforcement.head, ['Time', 'allow', 'deny', 'throttle', 'isolate']);
  assert.equal(enforcement.rows.length, 24, 'one row per hour');
  assert.equal(await columnTotal('activity-decisions', 'decisions'), 1200, 'the last day only');
  assert.equal(await columnTotal('activity-enforcement', 'deny'), 7);
  // Stacked: the busiest hour's bar holds the four types.
  const last = enforcement.rows[23].slice(1).map(countOf);
  assert.deepEqual(last, [40, 7, 2, 1], 'this hour holds what was reported');
  const rects = await page.$$eval('[data-testid="chart-activity-enforcement"] g.chart-bucket[data-bucket="23"] rect',
    (rs) => rs.map((r) => r.getAttribute('class')));
  assert.deepEqual(rects, ['series-allow', 'series-deny', 'series-throttle', 'series-isolate']);
  // The table view opens.
  await page.click('[data-testid="chart-activity-enforcement"] summary');
  assert.ok(await page.isVisible('[data-testid="chart-table-activity-enforcement"]'));
  await shot('dashboard-24h');

  // Seven days, through the form (client-side navigation; the range lives in the URL).
  await page.selectOption('#a-range', '7d');
  await Promise.all([page.waitForURL(/range=7d/), page.click('[data-testid=activity] button[type=submit]')]);
  await page.waitForSelector(`${scope}[data-range="7d"]`);
  assert.equal((await table('activity-decisions')).rows.length, 28, 'quarter days');
  assert.equal(await columnTotal('activity-decisions', 'decisions'), 2000);
  assert.equal(await columnTotal('activity-enforcement', 'allow'), 50);
  assert.equal(await columnTotal('activity-dig-files', 'DIG files'), 4);
  assert.equal(new URL(page.url()).searchParams.get('tenant'), TENANT, 'the tenant stays');
  await page.goto(`${base}/?range=30d&tenant=${TENANT}`);
  await page.waitForSelector(`${scope}[data-range="30d"]`);
  assert.equal((await table('activity-decisions')).rows.length, 30, 'days');
});

test('the charts follow new rollups when live events arrive, without a reload', async (t) => {
  const nodeCmd = nodeCommand();
  if (!nodeCmd || stack.fake) {
    t.skip('needs the real stack and a node binary');
    return;
  }
  await page.goto(`${base}/?tenant=${TENANT}`);
  await hydrated();
  await page.waitForSelector('body[data-live="open"]', { timeout: 30000 });
  await page.waitForSelector(`[data-testid=activity-scope][data-tenant="${TENANT}"]`);
  // Let the re-fetch of the stream's first open settle.
  await new Promise((r) => setTimeout(r, 2000));
  const before = await columnTotal('activity-decisions', 'decisions');
  await page.evaluate(() => {
    window.__chartsNoReload = 'still-here';
  });
  seed(0, { decisions: 1000000, allow: 5 });
  // No polling: without a live event the chart stays as it was.
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(await columnTotal('activity-decisions', 'decisions'), before, 'no fetch without an event');
  // A node enrolling in the tenant is a live event: the page re-fetches.
  const r = await api(`/api/orgs/${stack.org}/enrollment-tokens`, {
    method: 'POST',
    body: JSON.stringify({ tenant_id: TENANT, max_uses: 1, ttl_secs: 600 }),
  });
  assert.equal(r.status, 201);
  const token = (await r.json()).token;
  const node = spawn(nodeCmd[0], nodeCmd[1], {
    env: {
      ...process.env,
      RITMA_NODE_CONTROLLER_URL: stack.api_url,
      RITMA_ENROLL_TOKEN: token,
      RITMA_STATE_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'ritma-e2e-charts-node-')),
      RITMA_NODE_ID: `${TENANT}-node`,
      RITMA_HEARTBEAT_SECS: '2',
    },
    stdio: 'ignore',
  });
  spawned.push(node);
  const t0 = Date.now();
  await waitFor(
    async () => (await columnTotal('activity-decisions', 'decisions')) >= before + 1000000,
    60000,
    'the decisions chart to show the new rollup',
  );
  console.log(`# charts refreshed ${Date.now() - t0} ms after the node was started`);
  assert.equal(await page.evaluate(() => window.__chartsNoReload), 'still-here', 'no reload');
  node.kill('SIGTERM');
});

test('bad ranges and tenants are refused clearly, by the console and the API', async () => {
  await page.goto(`${base}/?range=1y`);
  await hydrated();
  let err = await page.waitForSelector('[data-testid=activity] [data-testid=error]', { timeout: 15000 });
  assert.match(await err.textContent(), /range must be one of 24h, 7d, 30d/);
  await page.goto(`${base}/?tenant=${encodeURIComponent("x' OR 1=1 --")}`);
  err = await page.waitForSelector('[data-testid=activity] [data-testid=error]', { timeout: 15000 });
  assert.match(await err.textContent(), /Invalid request.*tenant_id/s);
  for (const q of ['range=1y', 'range=24H', 'tenant_id=..%2Fother', 'range=7d&range=30d']) {
    const r = await api(`/api/orgs/${stack.org}/activity?${q}`);
    assert.equal(r.status, 400, q);
    const body = await r.json();
    assert.equal(body.error, 'invalid_request', q);
    assert.ok(body.message, q);
  }
  // Without a token: nothing to read.
  const r = await fetch(`${stack.api_url}/api/orgs/${stack.org}/activity`);
  assert.equal(r.status, 401, 'no token, no data');
});

test('the node page has an events timeline per range', async () => {
  const id = stack.nodes[0].id || stack.nodes[0].name;
  await page.goto(`${base}/nodes/${id}?range=7d`);
  await hydrated();
  await assertAccessible('node-events');
  assert.equal((await table('node-events')).rows.length, 28);
  assert.equal(await page.getAttribute('[data-testid=events-timeline] a[data-range="7d"]', 'aria-current'), 'true');
  await Promise.all([page.waitForURL(/range=30d/), page.click('[data-testid=events-timeline] a[data-range="30d"]')]);
  await waitFor(async () => (await table('node-events')).rows.length === 30, 15000, '30 days');
  // Its figures are the node's own rollups: at least its last day's (asked before the
  // page), at most all it reported in 30 days (asked after).
  const allow = async (hours) =>
    (await (await api(`/api/orgs/${stack.org}/nodes/${id}/events?hours=${hours}`)).json()).totals.allow;
  const lastDay = await allow(23);
  await page.reload();
  await hydrated();
  await waitFor(async () => (await table('node-events')).rows.length === 30, 15000, '30 days again');
  const shown = await columnTotal('node-events', 'allow');
  const month = await allow(720);
  assert.ok(shown >= lastDay && shown <= month, `allow ${shown} within [${lastDay}, ${month}]`);
  await shot('node-timeline');
});

test('the usage page charts each metric by day of the month', async () => {
  await page.goto(`${base}/usage`);
  await hydrated();
  for (const id of ['usage-decisions', 'usage-dig-files', 'usage-storage', 'usage-snapshot-exports']) {
    await assertAccessible(id);
  }
  const now = new Date();
  const days = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 0)).getUTCDate();
  const t = await table('usage-decisions');
  assert.equal(t.rows.length, days, 'every day of the month');
  const today = now.toISOString().slice(0, 10);
  const row = t.rows.find((r) => r[0] === today);
  assert.ok(row && countOf(row[1]) >= 1200, `today's decisions include the seeded ones: ${row}`);
  await shot('usage');
});

test('the WASM bundle carries no chart drawing code', async () => {
  await page.goto(`${base}/`);
  await hydrated();
  // The main module and the chunks of the pages shown so far.
  const modules = await page.evaluate(() =>
    performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.endsWith('.wasm')));
  assert.ok(modules.length > 0, 'the page loaded a WASM bundle');
  for (const wasm of modules) {
    const bytes = Buffer.from(await (await fetch(wasm)).arrayBuffer());
    console.log(`# console WASM ${wasm.split('/').pop()}: ${bytes.length} bytes`);
    for (const marker of ['chart-grid', 'text-anchor', 'Highest: ']) {
      assert.ok(!bytes.includes(marker), `${marker} is drawn by the server only`);
    }
  }
});
