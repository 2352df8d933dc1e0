// End-to-end tests of the console in apt's headless Chromium, against a running stack.
//
// Inputs (environment):
//   RITMA_STACK_FILE   stack file written by `ritma up` (default: <repo>/.ritma/dev/stack.json)
//   RITMA_CONSOLE_URL  a console already serving that stack (default: the stack file's
//                      console_url); otherwise the test starts RITMA_CONSOLE_BIN
//                      (default: $CARGO_TARGET_DIR/release/ritma-console)
//   RITMA_NODE_BIN     node daemon used to prove a wizard token enrolls a node (default:
//                      ritma-node, else `ritma node`, from $CARGO_TARGET_DIR/release)
//   CHROMIUM           browser binary (default: /usr/bin/chromium)
// Screenshots go to <repo>/tests/output/console-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort, waitFor } from './helpers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
const STACK_FILE = process.env.RITMA_STACK_FILE || path.join(ROOT, '.ritma/dev/stack.json');
const CONSOLE_BIN = process.env.RITMA_CONSOLE_BIN || path.join(TARGET, 'release/ritma-console');
// the node daemon: RITMA_NODE_BIN, else ritma-node, else `ritma node`
function nodeCommand() {
  if (process.env.RITMA_NODE_BIN) return [process.env.RITMA_NODE_BIN, []];
  for (const profile of [process.env.RITMA_E2E_PROFILE || 'release', 'release', 'debug']) {
    const standalone = path.join(TARGET, profile, 'ritma-node');
    if (fs.existsSync(standalone)) return [standalone, []];
    const cli = path.join(TARGET, profile, 'ritma');
    if (fs.existsSync(cli)) return [cli, ['node']];
  }
  return null;
}
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = path.join(ROOT, 'tests/output');
let LIVE_TIMEOUT = Number(process.env.RITMA_E2E_OFFLINE_TIMEOUT_MS || 60000);
// demo nodes in stack.json carry `name` (= node id, RITMA_NODE_ID) or `id`
const nodeId = (n) => n.id || n.name;

let stack;
let base;
let consoleProc;
let consoleLog = '';
let context;
let page;
const spawned = [];


async function shot(name) {
  fs.mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, `console-${name}.png`), fullPage: true });
}

// A figure as the console prints it (`26,920`) as a number.
const countOf = (text) => Number(text.trim().replace(/,/g, ''));

async function hydrated() {
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30000 });
}

async function liveOpen() {
  await page.waitForSelector('body[data-live="open"]', { timeout: 30000 });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

before(async () => {
  stack = JSON.parse(fs.readFileSync(STACK_FILE, 'utf8'));
  assert.ok(stack.api_url && stack.admin_token, `stack file ${STACK_FILE} lacks api_url/admin_token`);
  assert.ok(stack.nodes?.length >= 2, 'stack.json lists at least two demo nodes');
  if (stack.offline_after_secs) {
    LIVE_TIMEOUT = Math.max(LIVE_TIMEOUT, (stack.offline_after_secs + 15) * 1000);
  }
  const running = process.env.RITMA_CONSOLE_URL || stack.console_url;
  if (running) {
    // the console `ritma up` started (or one given): the real integration
    base = running.replace(/\/$/, '');
  } else {
    assert.ok(fs.existsSync(CONSOLE_BIN), `${CONSOLE_BIN} missing: run app/scripts/build.sh`);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    consoleProc = spawn(CONSOLE_BIN, [], {
      env: {
        ...process.env,
        RITMA_STACK_FILE: STACK_FILE,
        RITMA_CONSOLE_LISTEN: `127.0.0.1:${port}`,
        RITMA_LOG: process.env.RITMA_LOG || 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    consoleProc.stdout.on('data', (d) => (consoleLog += d));
    consoleProc.stderr.on('data', (d) => (consoleLog += d));
  }
  await waitFor(async () => (await fetch(`${base}/healthz`)).ok, 20000, `console at ${base}`);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ritma-e2e-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => console.error('[browser error]', e.message));
});

after(async () => {
  await context?.close().catch(() => {});
  for (const p of spawned) p.kill('SIGTERM');
  if (consoleProc) {
    consoleProc.kill('SIGTERM');
    const exited = await Promise.race([
      new Promise((r) => consoleProc.once('exit', () => r(true))),
      new Promise((r) => setTimeout(() => r(false), 5000)),
    ]);
    if (!exited) consoleProc.kill('SIGKILL');
    if (process.env.RITMA_E2E_VERBOSE) console.log(consoleLog);
  }
});

test('sign-in with the admin token leads to a live dashboard', async () => {
  await page.goto(`${base}/nodes`);
  assert.match(page.url(), /\/login\?next=%2Fnodes/, 'unauthenticated pages redirect to sign-in');
  await page.fill('#token', 'not-the-token');
  await Promise.all([page.waitForURL(/error=invalid/), page.click('button[type=submit]')]);
  await page.fill('#token', stack.admin_token);
  await Promise.all([page.waitForURL(/\/nodes$/), page.click('button[type=submit]')]);
  await page.goto(`${base}/`);
  await hydrated();
  await liveOpen();
  const active = Number(await page.textContent('[data-testid=card-active] .stat-value'));
  assert.ok(active >= 1, `Active nodes card shows ${active}`);
  const cookies = await context.cookies(base);
  const session = cookies.find((c) => c.name === 'ritma_console_session');
  assert.ok(session?.httpOnly, 'session cookie is HTTP-only');
  await shot('dashboard');
});

test('inventory renders, hydrates and lists the demo nodes', async () => {
  await page.goto(`${base}/nodes`);
  await hydrated();
  await liveOpen();
  for (const n of stack.nodes) {
    await page.waitForSelector(`tr[data-node-id="${nodeId(n)}"]`, { timeout: 10000 });
  }
  const text = await page.textContent('[data-testid=nodes-table] thead');
  for (const col of ['Node', 'Tenant', 'Status', 'Agent', 'Last heartbeat', 'Policy', 'Connectors', 'Labels']) {
    assert.ok(text.includes(col), `column ${col}`);
  }
  // Connector counts are the controller's (each demo node has a posture connector).
  let withConnectors = 0;
  for (const n of stack.nodes) {
    const r = await fetch(`${stack.api_url}/api/orgs/${stack.org}/nodes/${nodeId(n)}`, {
      headers: { authorization: `Bearer ${stack.admin_token}` },
    });
    const want = (await r.json()).connector_count;
    const shown = countOf(await page.textContent(`tr[data-node-id="${nodeId(n)}"] [data-testid=node-connectors]`));
    assert.equal(shown, want, `${nodeId(n)} shows ${shown} connectors, the API says ${want}`);
    if (want > 0) withConnectors += 1;
  }
  if (!stack.fake) assert.ok(withConnectors >= 1, 'the demo nodes have connectors');
  await shot('nodes');
});

test('filters narrow the inventory and live in the URL', async () => {
  await page.goto(`${base}/nodes`);
  await hydrated();
  const first = nodeId(stack.nodes[0]);
  await page.fill('#f-q', first);
  await page.click('form.filters button[type=submit]');
  await page.waitForURL(/[?&]q=/);
  await waitFor(
    async () => {
      const ids = await page.$$eval('tbody tr[data-node-id]', (rows) => rows.map((r) => r.dataset.nodeId));
      return ids.length >= 1 && ids.includes(first) && ids.length < stack.nodes.length;
    },
    10000,
    'search to narrow the rows',
  );
  // status filter from a shared URL
  await page.goto(`${base}/nodes?status=online`);
  await hydrated();
  const statuses = await page.$$eval('tbody tr[data-node-id]', (rows) => rows.map((r) => r.dataset.status));
  assert.ok(statuses.length >= 1 && statuses.every((s) => s === 'online'), `status filter: ${statuses}`);
  assert.equal(await page.inputValue('#f-status'), 'online');
  // a filter nothing matches shows the empty state
  await page.goto(`${base}/nodes?q=no-such-node-zzzz`);
  await hydrated();
  await page.waitForSelector('[data-testid=empty]');
  await shot('nodes-filtered-empty');
});

// ---------------------------------------------------------------- fleet operations
// (before the node-stopping test: these need every demo node running)

const api = (p, init = {}) =>
  fetch(`${stack.api_url}${p}`, {
    ...init,
    headers: {
      authorization: `Bearer ${stack.admin_token}`,
      ...(init.body ? { 'content-type': 'application/json' } : {}),
      ...(init.headers || {}),
    },
  });
const FLEET_TIMEOUT = 60000;
const HELD = 'demo-db-1';
const demoIds = () => stack.nodes.map(nodeId);
// a demo node that applies its policy (not the held one)
const applyingNode = () => (demoIds().includes('demo-web-1') ? 'demo-web-1' : demoIds().find((id) => id !== HELD));

test('inventory shows the applied policy and the drifted node', async (t) => {
  if (stack.fake || !demoIds().includes(HELD)) {
    t.skip('needs the real demo fleet of `ritma up`');
    return;
  }
  const good = applyingNode();
  await page.goto(`${base}/nodes`);
  await hydrated();
  await liveOpen();
  const t0 = Date.now();
  const applied = `tr[data-node-id="${good}"] [data-testid=node-policy-applied]`;
  let shown;
  await waitFor(
    async () => (shown = (await page.textContent(applied, { timeout: 2000 }))?.trim()) === 'baseline@1',
    FLEET_TIMEOUT,
    `${good} to show baseline@1 applied`,
  ).catch((e) => {
    throw new Error(`${e.message} (shows ${shown})`);
  });
  console.log(`# ${good} shows baseline@1 applied ${Date.now() - t0} ms after load`);
  assert.match(await page.getAttribute(applied, 'title'), /assigned baseline@1/);
  assert.equal(await page.$(`tr[data-node-id="${good}"] [data-testid=node-drifted]`), null, `${good} is not drifted`);
  await page.waitForSelector(`tr[data-node-id="${HELD}"] [data-testid=node-drifted]`, { timeout: FLEET_TIMEOUT });
  console.log(`# ${HELD} shown drifted ${Date.now() - t0} ms after load`);
  // the drifted filter lists the held node only
  await page.goto(`${base}/nodes?drifted=true`);
  await hydrated();
  await page.waitForSelector('tbody tr[data-node-id]');
  const ids = await page.$$eval('tbody tr[data-node-id]', (rows) => rows.map((r) => r.dataset.nodeId));
  assert.deepEqual(ids, [HELD], `drifted=true lists ${ids}`);
  assert.ok(await page.isChecked('[data-testid=filter-drifted]'), 'the drifted filter is checked');
  await shot('node-fleet');
  // the dashboard counts it
  await page.goto(`${base}/`);
  await hydrated();
  const drifted = Number(await page.textContent('[data-testid=card-drifted] .stat-value'));
  assert.ok(drifted >= 1, `Policy drift card shows ${drifted}`);
});

test('revoking a key in use raises a warning on the node page live', async (t) => {
  const node = 'demo-web-2';
  const key = `${node}-signing-1`;
  if (stack.fake || !demoIds().includes(node)) {
    t.skip('needs the real demo fleet of `ritma up`');
    return;
  }
  const govern = async (status) => {
    const r = await api(`/api/orgs/${stack.org}/keys/${key}/governance`, {
      method: 'PATCH',
      body: JSON.stringify({ status, reason: 'console e2e' }),
    });
    const text = await r.text();
    assert.equal(r.status, 200, `PATCH ${key} {status:${status}} -> ${r.status} ${text}`);
    assert.equal(JSON.parse(text).status, status);
  };
  await page.goto(`${base}/nodes/${node}`);
  await hydrated();
  await liveOpen();
  await page.waitForSelector('[data-testid=node-name]');
  assert.equal(await page.$('[data-testid=key-warning-banner]'), null, 'no key warning before the revocation');
  await page.evaluate(() => {
    window.__noReload = 'still-here';
  });
  const navBefore = await page.evaluate(() => performance.getEntriesByType('navigation').length);
  let t0 = Date.now();
  await govern('revoked');
  try {
    await page.waitForSelector('[data-testid=key-warning-banner][data-value=revoked]', { timeout: FLEET_TIMEOUT });
    console.log(`# key warning banner shown ${Date.now() - t0} ms after the revocation`);
    assert.equal(await page.evaluate(() => window.__noReload), 'still-here', 'page was not reloaded');
    assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), navBefore);
    assert.ok((await page.textContent('[data-testid=key-warning-banner]')).includes(key), 'the banner names the key');
    await shot('node-key-warning');
  } finally {
    t0 = Date.now();
    await govern('active');
  }
  await page.waitForSelector('[data-testid=key-warning-banner]', { state: 'detached', timeout: FLEET_TIMEOUT });
  console.log(`# key warning banner gone ${Date.now() - t0} ms after the reactivation`);
  assert.equal(await page.evaluate(() => window.__noReload), 'still-here', 'page was not reloaded');
  // the registry lists the key with its status
  await page.goto(`${base}/keys`);
  await hydrated();
  const row = `[data-testid=keys-table] tr[data-key-id="${key}"]`;
  await page.waitForSelector(row, { timeout: 15000 });
  assert.equal(await page.getAttribute(`${row} [data-testid=key-status] .badge`, 'data-value'), 'active');
  assert.equal((await page.textContent(`${row} [data-testid=key-status]`)).trim(), 'active');
  assert.equal(await page.getAttribute(row, 'data-status'), 'active');
  for (const n of demoIds()) {
    assert.ok(await page.$(`[data-testid=keys-table] tr[data-key-id="${n}-signing-1"]`), `key of ${n} listed`);
  }
  await shot('keys');
});

test('a host connector dry run from the console shows its findings', async (t) => {
  if (stack.fake) {
    t.skip('needs the real demo fleet of `ritma up`');
    return;
  }
  const node = applyingNode();
  await page.goto(`${base}/nodes/${node}`);
  await hydrated();
  const row = '[data-testid=node-connectors-table] tr[data-connector-id=posture]';
  await page.waitForSelector(row, { timeout: 15000 });
  const t0 = Date.now();
  await page.click(`${row} [data-testid=dry-run]`);
  await page.waitForSelector('[data-testid=dryrun-findings], [data-testid=dryrun-unreachable], [data-testid=dryrun-result] [data-testid=error]', {
    timeout: 30000,
  });
  console.log(`# dry run of posture on ${node} answered in ${Date.now() - t0} ms`);
  assert.equal(await page.$('[data-testid=dryrun-unreachable]'), null, 'the node answered the dry run');
  const checks = await page.$$eval('[data-testid=dryrun-findings] tbody tr td:first-child', (tds) => tds.map((td) => td.textContent.trim()));
  assert.ok(
    checks.some((c) => c.startsWith('host.sysctl') || c.startsWith('host.file.mode')),
    `findings: ${checks.join(', ')}`,
  );
  const outcomeAttr = await page.getAttribute('[data-testid=dryrun-findings]', 'data-outcome');
  assert.ok(['pass', 'fail', 'incomplete'].includes(outcomeAttr), outcomeAttr);
  // the row's last run is updated from the stored report
  await waitFor(
    async () => (await page.getAttribute(`${row} [data-testid=connector-last-outcome] .badge`, 'data-value')) === outcomeAttr,
    15000,
    'the connector row to show the last outcome',
  );
  await shot('node-dry-run');
});

test('usage page shows metered numbers and an estimate that is not an invoice', async (t) => {
  if (stack.fake) {
    t.skip('needs the real demo fleet of `ritma up`');
    return;
  }
  const t0 = Date.now();
  let decisions = 0;
  await waitFor(
    async () => {
      await page.goto(`${base}/usage`);
      await hydrated();
      await page.waitForSelector('[data-testid=usage-total-decisions] .stat-value', { timeout: 15000 });
      decisions = countOf(await page.textContent('[data-testid=usage-total-decisions] .stat-value'));
      if (decisions > 0) return true;
      await new Promise((r) => setTimeout(r, 5000));
      return false;
    },
    FLEET_TIMEOUT + 30000,
    `usage decisions > 0 (last ${decisions})`,
  );
  console.log(`# usage shows ${decisions} decisions ${Date.now() - t0} ms after the first load`);
  const label = await page.textContent('[data-testid=billing-label]');
  assert.match(label, /not an invoice/i, label);
  const total = (await page.textContent('[data-testid=billing-total]')).trim();
  assert.match(total, /^Total\s+\S+\s+\S+/, total);
  await page.waitForSelector('[data-testid=usage-tenants] tbody tr');
  const shownPeriod = (await page.textContent('[data-testid=usage-period-shown] strong')).trim();
  assert.match(shownPeriod, /^\d{4}-\d{2}$/);
  assert.equal(await page.inputValue('[data-testid=usage-period]'), shownPeriod, 'the month picker shows the month');

  // Figures as people read them, and the same as the API's.
  const shownText = (await page.textContent('[data-testid=usage-total-decisions] .stat-value')).trim();
  if (decisions >= 1000) assert.match(shownText, /^\d{1,3}(,\d{3})+$/, `separators in ${shownText}`);
  const r = await api(`/api/orgs/${stack.org}/usage/summary?period=${shownPeriod}`);
  assert.equal(r.status, 200);
  const summary = await r.json();
  assert.ok(summary.totals.decisions >= decisions, `API ${summary.totals.decisions} >= page ${decisions}`);
  const storageText = (await page.textContent('[data-testid=usage-total-storage] .stat-value')).trim();
  assert.match(storageText, /^\d+(\.\d)? (B|KiB|MiB|GiB|TiB)$/, `storage in a byte unit: ${storageText}`);
  for (const day of await page.$$eval('[data-testid=usage-daily] tbody time', (ts) => ts.map((t) => t.textContent))) {
    assert.match(day, /^\d{4}-\d{2}-\d{2}$/, `a day is a date: ${day}`);
  }
  // Priced quantities in the unit they are priced in: decisions per million.
  const priced = await page.$$eval('tr[data-metric=decisions] [data-testid=billing-quantity]', (cells) =>
    cells.map((c) => c.textContent.trim()),
  );
  assert.ok(priced.length >= 1, 'a decisions line per tenant');
  let millions = 0;
  for (const text of priced) {
    const m = /^([\d.]+) × 1M decisions$/.exec(text);
    assert.ok(m, `decisions priced per million: ${text}`);
    millions += Number(m[1]);
  }
  assert.ok(
    Math.abs(millions * 1e6 - decisions) <= 100 * priced.length + 1000,
    `${millions} M decisions billed against ${decisions} metered`,
  );
  await shot('usage');
});

test('policies page lists the baseline and its org assignment, and rejects invalid rules', async (t) => {
  if (stack.fake) {
    t.skip('needs the real demo fleet of `ritma up`');
    return;
  }
  await page.goto(`${base}/policies`);
  await hydrated();
  const pack = '[data-testid=rulepacks-table] tr[data-rulepack=baseline]';
  await page.waitForSelector(pack, { timeout: 15000 });
  assert.equal((await page.textContent(`${pack} [data-testid=rulepack-version]`)).trim(), 'baseline@1');
  await page.waitForSelector('[data-testid=assignments-table] tbody tr');
  const rows = await page.$$eval('[data-testid=assignments-table] tbody tr', (trs) =>
    trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent.trim())),
  );
  assert.ok(
    rows.some((r) => r[0] === 'org' && r[1] === 'baseline' && r[3] === 'enforce'),
    `org assignment of baseline: ${JSON.stringify(rows)}`,
  );
  // invalid JSON: said at once, and nothing is created
  const name = `e2e-invalid-${Date.now()}`;
  await page.fill('#rp-name', name);
  await page.fill('#rp-rules', '{"rules": [');
  await waitFor(
    async () => /not valid JSON/.test(await page.textContent('[data-testid=rules-json-error]')),
    5000,
    'the JSON error under the rules field',
  );
  assert.equal(await page.getAttribute('#rp-rules', 'aria-invalid'), 'true');
  await page.click('[data-testid=policy-form] button[type=submit]');
  await page.waitForSelector('[data-testid=policy-result] [data-state=error]', { timeout: 15000 });
  assert.equal(await page.$('[data-testid=policy-result] [data-state=ok]'), null, 'no success message');
  const r = await api(`/api/orgs/${stack.org}/rulepacks`);
  assert.equal(r.status, 200);
  const names = (await r.json()).items.map((p) => p.name);
  assert.ok(names.includes('baseline'), names.join(','));
  assert.ok(!names.includes(name), `${name} was created`);
  assert.equal(await page.$(`[data-testid=rulepacks-table] tr[data-rulepack="${name}"]`), null);
  await shot('policies');
});

let stopped;

// ---------------------------------------------------------------- alerting
// (before the node-stopping test: it needs the demo nodes online, and kills one)

/// A webhook receiver on loopback: every request's headers and raw body.
function startReceiver() {
  const got = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, raw: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, got, port: server.address().port }));
  });
}

const signed = (secret, raw) => `sha256=${crypto.createHmac('sha256', secret).update(raw).digest('hex')}`;

test('alerting: a webhook channel, a node_offline rule, a killed node: live banner, alert listed, signed webhook, silence', async (t) => {
  if (stack.fake) {
    t.skip('needs the real stack of `ritma up`');
    return;
  }
  const victim = stack.nodes.find((n) => nodeId(n) !== HELD && n.pid && alive(n.pid) && nodeId(n) !== applyingNode())
    || stack.nodes.find((n) => nodeId(n) !== HELD && n.pid && alive(n.pid));
  assert.ok(victim, 'a running demo node to kill');
  const victimId = nodeId(victim);
  const tenant = victim.tenant || 'prod';
  const receiver = await startReceiver();
  t.after(() => receiver.server.close());

  // 1. A webhook channel to the receiver; its secret is shown once.
  await page.goto(`${base}/alerts/channels`);
  await hydrated();
  const channelName = `e2e-hook-${Date.now().toString(36)}`;
  await page.fill('#c-name', channelName);
  await page.selectOption('#c-kind', 'webhook');
  await page.fill('#c-target', `http://127.0.0.1:${receiver.port}/hook`);
  await page.click('[data-testid=channel-create]');
  await page.waitForSelector('[data-testid=channel-secret]', { timeout: 15000 });
  const secret = (await page.textContent('[data-testid=channel-secret]')).trim();
  assert.match(secret, /^rwhs_/, 'a generated webhook secret');
  const card = `[data-testid=channel][data-channel-name="${channelName}"]`;
  await page.waitForSelector(card, { timeout: 15000 });
  assert.ok((await page.textContent(`${card} [data-testid=channel-target]`)).includes('127.0.0.1'));
  // A refused target shows the API's reason.
  await page.fill('#c-name', `${channelName}-bad`);
  await page.fill('#c-target', 'http://10.1.2.3/hook');
  await page.click('[data-testid=channel-create]');
  await page.waitForSelector('[data-testid=channel-create-error]', { timeout: 15000 });
  assert.match(await page.textContent('[data-testid=channel-create-error]'), /Invalid request: url:/);

  // 2. "Send test": delivered, logged, and signed.
  await page.click(`${card} [data-testid=channel-test]`);
  await page.waitForSelector('[data-testid=channel-test-result] [data-state=ok]', { timeout: 20000 });
  assert.match(await page.textContent('[data-testid=channel-test-result]'), /Test delivered \(HTTP 200\)/);
  await page.waitForSelector(`${card} tr[data-status=test][data-state=delivered]`, { timeout: 15000 });
  assert.equal((await page.textContent(`${card} tr[data-status=test] [data-testid=delivery-response]`)).trim(), '200');
  const test = receiver.got.find((r) => JSON.parse(r.raw).status === 'test');
  assert.ok(test, 'the test notification reached the receiver');
  assert.equal(test.headers['x-ritma-signature'], signed(secret, test.raw), 'test send signed with the secret');
  await shot('alert-channels');

  // 3. A node_offline rule for the victim's tenant, notifying the channel. A rule
  //    without a channel is refused with the API's message first.
  await page.goto(`${base}/alerts/rules`);
  await hydrated();
  const ruleName = `e2e offline ${Date.now().toString(36)}`;
  await page.fill('#r-name', ruleName);
  await page.selectOption('#r-event', 'node_offline');
  await page.fill('#r-tenant', tenant);
  await page.click('[data-testid=rule-create]');
  await page.waitForSelector('[data-testid=rule-create-result] [data-state=error]', { timeout: 15000 });
  assert.match(await page.textContent('[data-testid=rule-create-result]'), /channels/);
  const box = page.locator('label.check', { hasText: channelName }).locator('input[type=checkbox]');
  await box.check();
  await page.fill('#r-for', '0s');
  await page.fill('#r-repeat', '1h');
  await page.click('[data-testid=rule-create]');
  await page.waitForSelector('[data-testid=rule-create-result] [data-state=ok]', { timeout: 15000 });
  await page.waitForSelector(`tr[data-rule-name="${ruleName}"]`, { timeout: 15000 });
  assert.ok((await page.textContent(`tr[data-rule-name="${ruleName}"]`)).includes(channelName));

  // 4. Kill the node: the banner appears live (no reload) and the alert is listed.
  await page.goto(`${base}/alerts`);
  await hydrated();
  await liveOpen();
  assert.equal(await page.$('[data-testid=alerts-open] tr[data-event=node_offline]'), null, 'no offline alert yet');
  await page.evaluate(() => {
    window.__ritmaNoReloadAlerts = 'still-here';
  });
  const navBefore = await page.evaluate(() => performance.getEntriesByType('navigation').length);
  const t0 = Date.now();
  process.kill(victim.pid, 'SIGKILL');
  await page.waitForFunction(
    (id) => document.querySelector('[data-testid=alert-banner-headline]')?.textContent.includes(id),
    victimId,
    { timeout: LIVE_TIMEOUT },
  );
  console.log(`# alert banner for ${victimId} shown ${Date.now() - t0} ms after SIGKILL`);
  assert.match(await page.textContent('[data-testid=alert-banner-count]'), /^\d+ alerts? firing$/);
  assert.equal(await page.evaluate(() => window.__ritmaNoReloadAlerts), 'still-here', 'page was not reloaded');
  assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), navBefore);
  const row = `[data-testid=alerts-open] tr[data-event=node_offline][data-state=firing]`;
  await page.waitForSelector(row, { timeout: 15000 });
  assert.ok((await page.textContent(row)).includes(victimId));
  await shot('alerts-firing');

  // 5. The webhook: the firing notification, signed with the channel's secret.
  let firing;
  await waitFor(
    () => (firing = receiver.got.find((r) => {
      const b = JSON.parse(r.raw);
      return b.status === 'firing' && b.node_id === victimId;
    })),
    30000,
    'the firing webhook',
  );
  const body = JSON.parse(firing.raw);
  assert.equal(body.event, 'node_offline');
  assert.equal(body.org_id, stack.org);
  assert.equal(body.tenant_id, tenant);
  assert.ok(body.at && body.rule_name === ruleName, JSON.stringify(body));
  assert.equal(firing.headers['x-ritma-signature'], signed(secret, firing.raw), 'valid X-Ritma-Signature');
  assert.notEqual(firing.headers['x-ritma-signature'], signed(`${secret}x`, firing.raw));
  assert.ok(Math.abs(Number(firing.headers['x-ritma-timestamp']) - Date.now() / 1000) < 120, 'a current timestamp');

  // The banner is on every page.
  await page.goto(`${base}/nodes`);
  await hydrated();
  await page.waitForSelector('[data-testid=alert-banner]', { timeout: 15000 });

  // 6. A maintenance window for the node, listed as active; then ended.
  await page.goto(`${base}/alerts/silences`);
  await hydrated();
  const comment = `e2e maintenance ${Date.now().toString(36)}`;
  await page.fill('#s-node', victimId);
  await page.fill('#s-duration', '1h');
  await page.fill('#s-comment', comment);
  await page.click('[data-testid=silence-create]');
  await page.waitForSelector('[data-testid=silence-create-result] [data-state=ok]', { timeout: 15000 });
  const srow = page.locator('[data-testid=silences-table] tr', { hasText: comment });
  await srow.waitFor({ timeout: 15000 });
  assert.equal(await srow.getAttribute('data-state'), 'active');
  assert.ok((await srow.locator('[data-testid=silence-matchers]').textContent()).includes(`node=${victimId}`));
  // A refused duration says why.
  await page.fill('#s-duration', 'soon');
  await page.fill('#s-comment', 'bad');
  await page.click('[data-testid=silence-create]');
  await page.waitForSelector('[data-testid=silence-create-result] [data-state=error]', { timeout: 15000 });
  assert.match(await page.textContent('[data-testid=silence-create-result]'), /not a duration/);
  await shot('alert-silences');
  await srow.locator('[data-testid=silence-end]').click();
  await waitFor(async () => (await srow.getAttribute('data-state')) === 'ended', 15000, 'the silence to end');
});

test('a stopped node turns offline (red) live, without a reload', async () => {
  await page.goto(`${base}/nodes`);
  await hydrated();
  await liveOpen();
  stopped = null;
  for (const n of stack.nodes) {
    const s = await page.getAttribute(`tr[data-node-id="${nodeId(n)}"]`, 'data-status');
    if (s === 'online' && n.pid && alive(n.pid)) {
      stopped = n;
      break;
    }
  }
  assert.ok(stopped, 'an online demo node with a live pid to stop');
  await page.evaluate(() => {
    window.__ritmaNoReload = 'still-here';
  });
  const navBefore = await page.evaluate(() => performance.getEntriesByType('navigation').length);
  const t0 = Date.now();
  process.kill(stopped.pid, 'SIGTERM');
  const row = `tr[data-node-id="${nodeId(stopped)}"]`;
  await page.waitForSelector(`${row}[data-status="offline"]`, { timeout: LIVE_TIMEOUT });
  const took = Date.now() - t0;
  console.log(`# node ${nodeId(stopped)} shown offline ${took} ms after SIGTERM`);
  assert.equal(await page.evaluate(() => window.__ritmaNoReload), 'still-here', 'page was not reloaded');
  assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), navBefore);
  assert.match(await page.getAttribute(row, 'class'), /status-offline/);
  const bg = await page.$eval(`${row} td`, (td) => getComputedStyle(td).backgroundColor);
  const [r, g, b] = bg.match(/\d+/g).map(Number);
  assert.ok(r > g && r > b, `offline row is red-tinted (${bg})`);
  assert.equal((await page.textContent(`${row} .badge`)).trim(), 'Offline');
  await shot('nodes-offline');
});

test('a second org created at run time is live too: its SIGKILLed node turns offline without a reload', async (t) => {
  const nodeCmd = nodeCommand();
  if (!nodeCmd || stack.fake) {
    t.skip('needs the real stack and a node binary');
    return;
  }
  // A second org, created now (after the console started), with a node of its own
  // heartbeating every second (offline after 3 x 1 s + 2 s).
  const org = `e2e-org-${Date.now().toString(36)}`;
  let r = await api('/api/orgs', { method: 'POST', body: JSON.stringify({ id: org, name: 'E2E Second Org' }) });
  assert.equal(r.status, 201, `create org: ${r.status} ${await r.text()}`);
  r = await api(`/api/orgs/${org}/enrollment-tokens`, {
    method: 'POST',
    body: JSON.stringify({ tenant_id: 'prod', max_uses: 1, ttl_secs: 600 }),
  });
  assert.equal(r.status, 201);
  const token = (await r.json()).token;
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ritma-e2e-org2-node-'));
  const nodeId2 = 'e2e-org2-node';
  const node = spawn(nodeCmd[0], nodeCmd[1], {
    env: {
      ...process.env,
      RITMA_NODE_CONTROLLER_URL: stack.api_url,
      RITMA_ENROLL_TOKEN: token,
      RITMA_STATE_DIR: stateDir,
      RITMA_NODE_ID: nodeId2,
      RITMA_HEARTBEAT_SECS: '1',
    },
    stdio: 'ignore',
  });
  spawned.push(node);
  await waitFor(
    async () => {
      const res = await api(`/api/orgs/${org}/nodes/${nodeId2}`);
      return res.ok && (await res.json()).status === 'online';
    },
    60000,
    `${nodeId2} online in ${org}`,
  );
  // Switch the console to the new org (the switcher lists it: orgs are re-read).
  await page.goto(`${base}/nodes`);
  await hydrated();
  await page.waitForSelector(`#org-select option[value="${org}"]`, { state: 'attached', timeout: 15000 });
  await page.selectOption('#org-select', org);
  await Promise.all([page.waitForURL(new RegExp(`${base}/?$`)), page.click('form.org button[type=submit]')]);
  await page.goto(`${base}/nodes`);
  await hydrated();
  await liveOpen();
  const row = `tr[data-node-id="${nodeId2}"]`;
  await page.waitForSelector(`${row}[data-status="online"]`, { timeout: 15000 });
  // The header says live for this org.
  await page.waitForSelector('[data-testid=live-indicator].live-open', { timeout: 15000 });
  await page.evaluate(() => {
    window.__ritmaNoReload2 = 'still-here';
  });
  const navBefore = await page.evaluate(() => performance.getEntriesByType('navigation').length);
  const t0 = Date.now();
  node.kill('SIGKILL');
  await page.waitForSelector(`${row}[data-status="offline"]`, { timeout: LIVE_TIMEOUT });
  console.log(`# ${org}/${nodeId2} shown offline ${Date.now() - t0} ms after SIGKILL`);
  assert.equal(await page.evaluate(() => window.__ritmaNoReload2), 'still-here', 'page was not reloaded');
  assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), navBefore);
  await shot('second-org-offline');
  // Back to the stack's org for the tests that follow.
  await page.goto(`${base}/nodes`);
  await hydrated();
  await page.selectOption('#org-select', stack.org);
  await Promise.all([page.waitForURL(new RegExp(`${base}/?$`)), page.click('form.org button[type=submit]')]);
});

test('node detail opens with metadata, timeline and config snippet', async () => {
  await page.goto(`${base}/nodes`);
  await hydrated();
  const target = nodeId(stopped || stack.nodes[0]);
  await page.click(`tr[data-node-id="${target}"] .node-link`);
  await page.waitForURL(new RegExp(`/nodes/${target}$`));
  await page.waitForSelector('[data-testid=node-name]');
  const body = await page.textContent('main');
  assert.ok(body.includes(target), 'shows the node id');
  const snippet = await page.textContent('[data-testid=config-snippet]');
  for (const v of ['RITMA_NODE_CONTROLLER_URL=', 'RITMA_NODE_ORG_ID=', 'RITMA_NODE_TENANT_ID=', 'RITMA_ENROLL_TOKEN=', 'RITMA_STATE_DIR=']) {
    assert.ok(snippet.includes(v), `snippet has ${v}`);
  }
  if (stopped) {
    await page.waitForSelector('[data-testid=node-status][data-status=offline]');
    await page.waitForSelector('[data-testid=timeline] li.status-offline');
  }
  const titles = await page.$$eval('[data-testid=timeline-title]', (ts) => ts.map((t) => t.textContent.trim()));
  assert.ok(!titles.includes('Unseen → Unseen'), `no unseen-to-unseen entry: ${titles}`);
  if (titles.length && !stack.fake) assert.equal(titles[titles.length - 1], 'Enrolled', `the oldest entry is the enrollment: ${titles}`);
  await shot('node-detail');
});

test('a running node answers a diagnose request from its page, without secrets', async (t) => {
  if (stack.fake) {
    t.skip('needs the real demo fleet of `ritma up`');
    return;
  }
  const r = await api(`/api/orgs/${stack.org}/nodes?status=online&limit=10`);
  const online = (await r.json()).items.map((n) => n.id).filter((id) => demoIds().includes(id));
  assert.ok(online.length >= 1, 'a demo node is still online');
  const id = online[0];
  await page.goto(`${base}/nodes/${id}`);
  await hydrated();
  await page.click('[data-testid=diagnose]');
  await page.waitForSelector('[data-testid=diagnose-bundle]', { timeout: 30000 });
  const bundle = JSON.parse(await page.textContent('[data-testid=diagnose-bundle]'));
  assert.equal(bundle.bundle, 'ritma-node diagnose');
  assert.equal(bundle.identity.node_id, id);
  assert.equal(bundle.config.key_seed, 'present (not included)');
  assert.ok(!JSON.stringify(bundle).includes(stack.admin_token), 'no token in the bundle');
  const href = await page.getAttribute('[data-testid=diagnose-download]', 'href');
  assert.ok(href.startsWith('data:application/json'), 'offered as a file');
  await shot('node-diagnose');
});

test('enrollment wizard creates a token and shows the install command once', async () => {
  await page.goto(`${base}/enroll`);
  await hydrated();
  const tenant = await (async () => {
    const r = await fetch(`${stack.api_url}/api/orgs/${stack.org}/nodes?limit=1`, {
      headers: { authorization: `Bearer ${stack.admin_token}` },
    });
    const j = await r.json();
    return j.items[0].tenant_id;
  })();
  await page.fill('#e-tenant', tenant);
  await page.fill('#e-labels', 'role=e2e');
  await page.click('[data-testid=enroll-form] button[type=submit]');
  await page.waitForSelector('[data-testid=token-secret]', { timeout: 15000 });
  const secret = (await page.textContent('[data-testid=token-secret]')).trim();
  assert.ok(secret.length >= 16, 'a token secret is shown');
  const cmd = (await page.textContent('[data-testid=install-command]')).trim();
  assert.ok(cmd.includes(`RITMA_ENROLL_TOKEN=${secret}`), cmd);
  assert.ok(cmd.includes(`RITMA_NODE_TENANT_ID=${tenant}`), cmd);
  assert.ok(cmd.includes(`RITMA_NODE_ORG_ID=${stack.org}`), cmd);
  assert.ok(cmd.endsWith('ritma-node'), cmd);
  // the controller's node configuration for the tenant, with the token filled in
  if (!stack.fake) {
    await page.waitForSelector('[data-testid=config-template] [data-testid=config-template-env]', { timeout: 15000 });
    const tmpl = await page.textContent('[data-testid=config-template-env]');
    assert.ok(tmpl.includes('RITMA_NODE_CONTROLLER_URL='), tmpl);
    assert.ok(tmpl.includes(`RITMA_NODE_TENANT_ID=${tenant}`), tmpl);
    assert.ok(tmpl.includes(secret) && !tmpl.includes('<token>'), 'template carries the new token');
    assert.ok((await page.textContent('[data-testid=config-template-systemd]')).includes('[Service]'), 'systemd unit');
  }
  await shot('enroll');
  // the token is listed (without its secret)
  await page.waitForSelector('[data-testid=tokens-table] tbody tr');
  assert.ok(!(await page.textContent('[data-testid=tokens-table]')).includes(secret), 'list never shows secrets');

  // it is a working token: a real node enrolls with it and appears in the inventory live
  const nodeCmd = nodeCommand();
  if (!nodeCmd || stack.fake) {
    console.log('# skipped enrolling a node with the token (no node binary, or the fake stack)');
    return;
  }
  await page.goto(`${base}/nodes?label=role%3De2e`);
  await hydrated();
  await liveOpen();
  const env = {};
  for (const m of cmd.matchAll(/(RITMA_[A-Z_]+)=('([^']*)'|\S+)/g)) env[m[1]] = m[3] ?? m[2];
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ritma-e2e-node-'));
  const node = spawn(nodeCmd[0], nodeCmd[1], {
    env: { ...process.env, ...env, RITMA_STATE_DIR: stateDir, RITMA_NODE_ID: 'e2e-wizard-node', RITMA_HEARTBEAT_SECS: '2' },
    stdio: 'ignore',
  });
  spawned.push(node);
  // the new node shows up without a reload (enrolled event → re-fetch, or the next re-sync)
  await page.waitForSelector('tbody tr[data-node-id="e2e-wizard-node"]', { timeout: 60000 });
  await shot('enrolled-node');
  node.kill('SIGTERM');
});

test('audit page lists changes, filters them and shows before/after', async () => {
  if (stack.fake) {
    console.log('# skipped the audit page (the fake stack has no audit trail)');
    return;
  }
  // A change to find: an enrollment token made through the API.
  const r = await fetch(`${stack.api_url}/api/orgs/${stack.org}/enrollment-tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.admin_token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tenant_id: 'audit-e2e', ttl_secs: 600, max_uses: 1 }),
  });
  assert.equal(r.status, 201, await r.text());
  await page.goto(`${base}/audit`);
  await hydrated();
  await page.waitForSelector('[data-testid=audit-table] tbody tr');
  const all = await page.locator('[data-testid=audit-table] tbody tr').count();
  assert.ok(all >= 1, 'entries are listed');
  // filter by action: only token creations remain, and the URL keeps the filter
  await page.fill('#a-action', 'enrollment_token.create');
  await page.click('[data-testid=audit-filters] button[type=submit]');
  await waitFor(async () => page.url().includes('action=enrollment_token.create'), 10000, 'filter in the URL');
  // the filtered page replaces the unfiltered rows (not at once on a busy machine)
  const actionCells = () => page.locator('[data-testid=audit-table] tbody tr td:nth-child(3)').allTextContents();
  await waitFor(async () => {
    const now = await actionCells();
    return now.length >= 1 && now.every((a) => a.trim() === 'enrollment_token.create');
  }, 15000, 'only the filtered entries listed');
  const actions = await actionCells();
  assert.ok(actions.length >= 1, 'the new token is in the trail');
  assert.ok(actions.every((a) => a.trim() === 'enrollment_token.create'), actions.join(','));
  // before/after of the change, never the secret
  const row = page.locator('[data-testid=audit-table] tbody tr').first();
  await row.locator('details summary').click();
  const change = await row.locator('details').textContent();
  assert.ok(change.includes('audit-e2e'), change);
  assert.ok(!/ritma_et_/.test(change), 'no token secret in the audit trail');
  // a filter that matches nothing says so
  await page.goto(`${base}/audit?actor=nobody-at-all`);
  await hydrated();
  await page.waitForSelector('[data-testid=audit-empty]');
  await shot('audit');
});

test('narrow screen and dark mode stay readable', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/nodes`);
  await hydrated();
  await shot('nodes-narrow');
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.goto(`${base}/`);
  await hydrated();
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = bg.match(/\d+/g).map(Number);
  assert.ok(r + g + b < 150, `dark background (${bg})`);
  await shot('dashboard-dark');
  // keyboard: the skip link is the first tab stop
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.className), 'skip');
  await page.emulateMedia({ colorScheme: 'light' });
});
