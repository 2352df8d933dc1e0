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
//
// The tests are split by page area, run one file after the other (in name order):
// console.test.mjs (sign-in, dashboard, inventory), console_fleet.test.mjs (fleet
// operations, with every demo node running) and console_live.test.mjs (alerting,
// nodes going offline, node pages, enrollment, audit, layout). Their shared setup is
// console-harness.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from './helpers.mjs';
import { base, consoleStack, context, countOf, hydrated, liveOpen, nodeId, page, shot, stack } from './console-harness.mjs';

consoleStack();

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

// Each page is a lazy route (a WASM chunk of its own, app/scripts/build.sh):
// a first load fetches the main module and that page's code only; going to
// another page fetches its code then, without a reload, and the new page works.
test('a page loads only its own code; the next page brings its own', async () => {
  const chunks = () =>
    page.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .map((e) => e.name.split('/').pop())
        .filter((n) => n.endsWith('.wasm')),
    );
  // A page's chunk: its island's (the audit page has none: the server renders all
  // of it), or its lazy route's when the whole page hydrates (RITMA_E2E_FULL_HYDRATION=1).
  const islands = process.env.RITMA_E2E_FULL_HYDRATION !== '1';
  const chunkOf = {
    audit: islands ? null : 'split___audit_route_view',
    nodes: islands ? 'split_inventory_loader' : 'split___nodes_route_view',
    node: islands ? 'split_node_view_loader' : 'split___node_detail_route_view',
  };
  await page.goto(`${base}/audit`);
  await hydrated();
  // The shell hydrates first; the page's chunk follows.
  if (chunkOf.audit) {
    await waitFor(
      async () => (await chunks()).some((n) => n.startsWith(chunkOf.audit)),
      10000,
      "the audit page's code",
    );
  }
  const first = await chunks();
  assert.ok(first.includes('ritma_console_bg.wasm'), `the main module: ${first}`);
  assert.ok(!first.some((n) => n.startsWith(chunkOf.nodes)), `no inventory code yet: ${first}`);
  assert.ok(!first.some((n) => n.startsWith(chunkOf.node)), `no node page code: ${first}`);
  await page.evaluate(() => window.__ritmaNoReload = true);
  await page.click('nav[aria-label=Main] a[href="/nodes"]');
  await page.waitForSelector('[data-testid=nodes-table]');
  await waitFor(
    async () => (await chunks()).some((n) => n.startsWith(chunkOf.nodes)),
    10000,
    "the inventory's code to load on navigation",
  );
  // Islands mode has no client router: links load pages.
  const reloaded = !(await page.evaluate(() => window.__ritmaNoReload === true));
  assert.equal(reloaded, islands, islands ? 'a link loads the page' : 'navigated without a reload');
  // The lazily loaded page is live: a filter typed into it narrows the rows.
  const firstId = nodeId(stack.nodes[0]);
  await page.fill('#f-q', firstId);
  await page.click('form.filters button[type=submit]');
  await page.waitForURL(/[?&]q=/);
  await page.waitForSelector(`tr[data-node-id="${firstId}"]`, { timeout: 10000 });
});
