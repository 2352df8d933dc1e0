// End-to-end tests of the console's fleet operations in apt's headless Chromium,
// against a running stack: policies and drift, key governance, connector dry runs,
// usage and the policies page. Inputs (environment): as for console.test.mjs.
// Screenshots go to <repo>/tests/output/console-*.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from './helpers.mjs';
import {
  FLEET_TIMEOUT,
  HELD,
  api,
  applyingNode,
  base,
  consoleStack,
  countOf,
  demoIds,
  hydrated,
  liveOpen,
  page,
  shot,
  stack,
} from './console-harness.mjs';

consoleStack({ signedIn: true });

// ---------------------------------------------------------------- fleet operations
// (before the node-stopping test: these need every demo node running)

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
