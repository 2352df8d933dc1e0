// End-to-end tests of the console in apt's headless Chromium, against a running
// stack, that stop nodes (after the fleet operations of console_fleet.test.mjs,
// which need every demo node running): alerting, nodes going offline live, a second
// org, the node pages, the enrollment wizard, the audit page and the layout.
// Inputs (environment): as for console.test.mjs.
// Screenshots go to <repo>/tests/output/console-*.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './helpers.mjs';
import {
  HELD,
  LIVE_TIMEOUT,
  alive,
  api,
  applyingNode,
  base,
  consoleStack,
  demoIds,
  hydrated,
  liveOpen,
  nodeCommand,
  nodeId,
  page,
  shot,
  spawned,
  stack,
} from './console-harness.mjs';

consoleStack({ signedIn: true });

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
  await page.waitForSelector('[data-testid=channel-create-result] [data-state=error]', { timeout: 15000 });
  assert.match(await page.textContent('[data-testid=channel-create-result]'), /Invalid request: url:/);
  assert.equal(await page.isVisible('[data-testid=channel-secret]'), false, 'no secret shown after a refusal');

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

test('a form posted after the session ended is refused clearly, creates nothing, and the page stays', async () => {
  await page.goto(`${base}/alerts/silences`);
  await hydrated();
  const context = page.context();
  const saved = await context.cookies();
  const comment = `e2e signed out ${Date.now().toString(36)}`;
  try {
    await context.clearCookies();
    await page.fill('#s-duration', '1h');
    await page.fill('#s-comment', comment);
    await page.click('[data-testid=silence-create]');
    await page.waitForSelector('[data-testid=silence-create-result] [data-state=error]', { timeout: 15000 });
    assert.match(await page.textContent('[data-testid=silence-create-result]'), /session has ended/);
    assert.match(page.url(), /\/alerts\/silences$/, 'still on the page');
    assert.equal(await page.inputValue('#s-comment'), comment, 'what was typed is kept');
  } finally {
    await context.addCookies(saved);
  }
  const r = await api(`/api/orgs/${stack.org}/silences`);
  assert.equal(r.status, 200);
  const comments = (await r.json()).items.map((s) => s.comment);
  assert.ok(!comments.includes(comment), `a silence was created signed out: ${comments}`);
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
