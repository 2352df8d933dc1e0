// Exports and bulk actions in apt's headless Chromium, against the stack of `ritma up`.
//
// Exports: the inventory (with the page's filter), the audit trail and usage download
// as CSV and JSON through the console, row for row what the controller's export API
// gives. Bulk actions: tick rows, preview (count and sample), run, and the job's
// progress arrives live until it is done; then "all matching this filter" undoes it.
//
// Inputs (environment): RITMA_STACK_FILE, RITMA_CONSOLE_URL, CHROMIUM, as for
// console.test.mjs (this file needs the console `ritma up` started, or RITMA_CONSOLE_URL).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { waitFor } from './helpers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const STACK_FILE = process.env.RITMA_STACK_FILE || path.join(ROOT, '.ritma/dev/stack.json');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = path.join(ROOT, 'tests/output');
const JOB_TIMEOUT = 60000;

let stack;
let base;
let context;
let page;

const nodeId = (n) => n.id || n.name;

const api = (p, init = {}) =>
  fetch(`${stack.api_url}${p}`, {
    ...init,
    headers: {
      authorization: `Bearer ${stack.admin_token}`,
      ...(init.body ? { 'content-type': 'application/json' } : {}),
      ...(init.headers || {}),
    },
  });

async function shot(name) {
  fs.mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, `console-${name}.png`), fullPage: true });
}

async function hydrated() {
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30000 });
}

async function liveOpen() {
  await page.waitForSelector('body[data-live="open"]', { timeout: 30000 });
}

// Click an export link and return the downloaded file's text and name.
async function download(testid) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid=${testid}]`)]);
  const file = await dl.path();
  return { name: dl.suggestedFilename(), text: fs.readFileSync(file, 'utf8') };
}

// The first column of each CSV data row (ids never hold commas or quotes).
const csvIds = (text) =>
  text
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(',')[0]);

before(async () => {
  stack = JSON.parse(fs.readFileSync(STACK_FILE, 'utf8'));
  assert.ok(stack.api_url && stack.admin_token && stack.org, `stack file ${STACK_FILE} lacks api_url/admin_token/org`);
  const running = process.env.RITMA_CONSOLE_URL || stack.console_url;
  assert.ok(running, 'a running console (ritma up starts one)');
  base = running.replace(/\/$/, '');
  await waitFor(async () => (await fetch(`${base}/healthz`)).ok, 20000, `console at ${base}`);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ritma-e2e-bulk-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => console.error('[browser error]', e.message));
  await page.goto(`${base}/login`);
  await page.fill('#token', stack.admin_token);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('button[type=submit]')]);
});

after(async () => {
  await context?.close().catch(() => {});
});

test('exports download the filtered inventory, the audit trail and usage as the API gives them', async () => {
  await page.goto(`${base}/nodes?status=online`);
  await hydrated();
  const csv = await download('export-nodes-csv');
  assert.match(csv.name, /nodes\.csv$/);
  const apiCsv = await (await api(`/api/orgs/${stack.org}/exports/nodes?status=online&format=csv`)).text();
  assert.equal(csv.text.split('\n')[0], apiCsv.split('\n')[0], 'the same columns');
  assert.deepEqual(csvIds(csv.text), csvIds(apiCsv), 'the same online nodes, in the same order');
  assert.ok(csvIds(csv.text).length >= 1, 'some node is online');

  const json = await download('export-nodes-json');
  assert.match(json.name, /nodes\.json$/);
  const rows = JSON.parse(json.text);
  const apiRows = await (await api(`/api/orgs/${stack.org}/exports/nodes?status=online&format=json`)).json();
  assert.deepEqual(
    rows.map((r) => r.id),
    apiRows.map((r) => r.id),
  );
  assert.ok(rows.every((r) => r.status === 'online'), 'the page filter applies to the export');

  await page.goto(`${base}/audit`);
  await hydrated();
  const audit = await download('export-audit-json');
  const entries = JSON.parse(audit.text);
  assert.ok(entries.length >= 1, 'the audit trail has entries');
  const apiAudit = await (await api(`/api/orgs/${stack.org}/exports/audit?format=json`)).json();
  // newest first: what the API lists up to the newest downloaded entry is the download
  const newest = entries[0].id;
  assert.deepEqual(
    entries.map((e) => e.id),
    apiAudit.filter((e) => e.id <= newest).map((e) => e.id),
  );

  await page.goto(`${base}/usage`);
  await hydrated();
  const usage = await download('export-usage-csv');
  const apiUsage = await (await api(`/api/orgs/${stack.org}/exports/usage?format=csv`)).text();
  assert.equal(usage.text.split('\n')[0], apiUsage.split('\n')[0]);
  assert.ok(usage.text.trim().split('\n').length >= 1);
});

test('bulk: ticked rows are previewed, labelled by a job whose progress arrives live, and a filter undoes it', async () => {
  const ids = stack.nodes.map(nodeId).slice(0, 2);
  assert.equal(ids.length, 2, 'two demo nodes');
  await page.goto(`${base}/nodes`);
  await hydrated();
  await liveOpen();
  for (const id of ids) {
    await page.check(`tr[data-node-id="${id}"] [data-testid=tick-node]`);
  }
  await page.selectOption('[data-testid=bulk-action]', 'add_labels');
  await page.fill('[data-testid=bulk-labels]', 'e2e-bulk=yes');
  await page.click('[data-testid=bulk-preview]');
  await page.waitForSelector('[data-testid=bulk-preview-result][data-count="2"]', { timeout: 10000 });
  const sample = await page.textContent('[data-testid=bulk-preview-result]');
  for (const id of ids) assert.ok(sample.includes(id), `the sample lists ${id}`);
  await shot('bulk-preview');
  await page.click('[data-testid=bulk-run]');
  // no reload, no polling: the final state comes over /live
  await page.waitForSelector('[data-testid=bulk-progress][data-state="done"]', { timeout: JOB_TIMEOUT });
  assert.equal(await page.getAttribute('[data-testid=bulk-progress]', 'data-succeeded'), '2');
  await shot('bulk-done');
  for (const id of ids) {
    const n = await (await api(`/api/orgs/${stack.org}/nodes/${id}`)).json();
    assert.equal(n.labels['e2e-bulk'], 'yes', `${id} has the label`);
  }

  // All matching a filter: the labelled nodes, unlabelled again.
  await page.goto(`${base}/nodes?label=${encodeURIComponent('e2e-bulk=yes')}`);
  await hydrated();
  await liveOpen();
  await page.check('[data-testid=bulk-scope-filter]');
  await page.selectOption('[data-testid=bulk-action]', 'remove_labels');
  await page.fill('[data-testid=bulk-keys]', 'e2e-bulk');
  await page.click('[data-testid=bulk-preview]');
  await page.waitForSelector('[data-testid=bulk-preview-result][data-count="2"]', { timeout: 10000 });
  await page.click('[data-testid=bulk-run]');
  await page.waitForSelector('[data-testid=bulk-progress][data-state="done"]', { timeout: JOB_TIMEOUT });
  for (const id of ids) {
    const n = await (await api(`/api/orgs/${stack.org}/nodes/${id}`)).json();
    assert.equal(n.labels['e2e-bulk'], undefined, `${id} lost the label`);
  }
  const jobs = await (await api(`/api/orgs/${stack.org}/bulk-jobs`)).json();
  assert.ok(jobs.items.length >= 2 && jobs.items.every((j) => j.state === 'done'), 'both jobs are done');
});
