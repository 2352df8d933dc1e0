// Live-path benchmark (f): a state change published on the bus → the inventory
// row updated in a real browser (apt's headless Chromium), no reload.
//
// Against a running `ritma up` stack (app/scripts/bench-live.sh starts one):
// the key a demo node signs with is revoked and reactivated through the API,
// N times. Each change commits a `key_warning` state change that the
// controller publishes on the node's state subject. Three clocks of one
// machine are compared, all epoch milliseconds:
//   t_req  the PATCH was sent,
//   t_bus  `ritma tail` (an integrator subscriber) printed the state change,
//   t_dom  a MutationObserver in the page saw the row's key badge change.
// Figures: published → row (bus → console server → SSE → hydrated page) and
// request → row (the whole path: API, commit, outbox, publisher, bus, console).
// Printed, and written as JSON to $RITMA_BENCH_OUT (default target/bench/live.json).
//
// Inputs: RITMA_STACK_FILE, RITMA_CLI_BIN (the `ritma` binary), CHROMIUM,
// RITMA_BENCH_LIVE_CHANGES (default 40).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
const STACK_FILE = process.env.RITMA_STACK_FILE || path.join(ROOT, '.ritma/dev/stack.json');
const CLI = process.env.RITMA_CLI_BIN || path.join(TARGET, 'release/ritma');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHANGES = Number(process.env.RITMA_BENCH_LIVE_CHANGES || 40);
const OUT = process.env.RITMA_BENCH_OUT || path.join(TARGET, 'bench/live.json');
const TIMEOUT_MS = 15000;

const stack = JSON.parse(fs.readFileSync(STACK_FILE, 'utf8'));
const nodeId = (n) => n.id || n.name;

function percentile(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}
function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50_ms: percentile(s, 50), p99_ms: percentile(s, 99), max_ms: s[s.length - 1] ?? null };
}

// Waits for the first queued item that `match` accepts (items arrive from a stream).
function queue() {
  const items = [];
  const waiters = [];
  return {
    push(item) {
      items.push(item);
      for (const w of [...waiters]) w();
    },
    async take(match, what) {
      const end = Date.now() + TIMEOUT_MS;
      for (;;) {
        const i = items.findIndex(match);
        if (i >= 0) return items.splice(i, 1)[0];
        const left = end - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => {
          const w = () => {
            waiters.splice(waiters.indexOf(w), 1);
            resolve();
          };
          waiters.push(w);
          setTimeout(w, left);
        });
      }
    },
  };
}

async function api(pathname, init = {}) {
  const r = await fetch(`${stack.api_url}${pathname}`, {
    ...init,
    headers: { authorization: `Bearer ${stack.admin_token}`, 'content-type': 'application/json' },
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${init.method || 'GET'} ${pathname} -> ${r.status} ${text}`);
  return JSON.parse(text);
}

async function main() {
  if (!stack.console_url) throw new Error(`${STACK_FILE} has no console_url (was the console built?)`);
  const node = stack.nodes.map(nodeId)[0];
  const key = `${node}-signing-1`;

  // The integrator's view of the bus, stamped on arrival.
  const bus = queue();
  const tail = spawn(CLI, ['tail', '--data-dir', stack.data_dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  readline.createInterface({ input: tail.stdout }).on('line', (line) => {
    const t = Date.now();
    const body = line.slice(line.indexOf(' ') + 1);
    try {
      const m = JSON.parse(body);
      if (m.kind === 'key_warning') bus.push({ t, node: m.node_id, status: m.key_status ?? null });
    } catch {
      // not a JSON message (telemetry is JSON too, but never key_warning)
    }
  });

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ritma-bench-live-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const dom = queue();
  try {
    const page = context.pages()[0] || (await context.newPage());
    await page.exposeFunction('__ritmaBenchSeen', (t, present) => dom.push({ t, present }));
    // Sign in with the admin token (the console's break-glass form).
    await page.goto(`${stack.console_url.replace(/\/$/, '')}/nodes`);
    if (page.url().includes('/login')) {
      await page.fill('#token', stack.admin_token);
      await Promise.all([page.waitForURL(/\/nodes$/), page.click('button[type=submit]')]);
    }
    await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30000 });
    await page.waitForSelector('body[data-live="open"]', { timeout: 30000 });
    await page.waitForSelector(`tr[data-node-id="${node}"]`, { timeout: 30000 });
    // Start from an active key (no badge).
    await api(`/api/orgs/${stack.org}/keys/${key}/governance`, {
      method: 'PATCH',
      body: JSON.stringify({ status: 'active', reason: 'live-path benchmark start' }),
    });
    await page.waitForSelector(`tr[data-node-id="${node}"] [data-testid=node-key-warning]`, {
      state: 'detached',
      timeout: TIMEOUT_MS,
    });
    const navigations = () => page.evaluate(() => performance.getEntriesByType('navigation').length);
    const navBefore = await navigations();
    await page.evaluate((id) => {
      const row = () => document.querySelector(`tr[data-node-id="${id}"]`);
      let present = !!row()?.querySelector('[data-testid=node-key-warning]');
      new MutationObserver(() => {
        const now = !!row()?.querySelector('[data-testid=node-key-warning]');
        if (now !== present) {
          present = now;
          window.__ritmaBenchSeen(Date.now(), now);
        }
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    }, node);

    const busToRow = [];
    const requestToRow = [];
    const statuses = ['revoked', 'active'];
    for (let i = 0; i < CHANGES; i++) {
      const status = statuses[i % 2];
      const expectBadge = status !== 'active';
      const tReq = Date.now();
      await api(`/api/orgs/${stack.org}/keys/${key}/governance`, {
        method: 'PATCH',
        body: JSON.stringify({ status, reason: 'live-path benchmark' }),
      });
      const seenBus = await bus.take((e) => e.node === node && (e.status !== null) === expectBadge, `bus change ${i}`);
      const seenDom = await dom.take((e) => e.present === expectBadge, `row change ${i}`);
      busToRow.push(seenDom.t - seenBus.t);
      requestToRow.push(seenDom.t - tReq);
    }
    if ((await navigations()) !== navBefore) throw new Error('the page reloaded during the run');
    // Leave the demo as it was.
    await api(`/api/orgs/${stack.org}/keys/${key}/governance`, {
      method: 'PATCH',
      body: JSON.stringify({ status: 'active', reason: 'live-path benchmark done' }),
    }).catch(() => {});

    const result = {
      changes: CHANGES,
      node,
      bus_to_row: summary(busToRow),
      request_to_row: summary(requestToRow),
      reloads: 0,
    };
    const b = result.bus_to_row;
    const c = result.request_to_row;
    console.log(
      `live path, ${CHANGES} state changes: published → row updated p50 ${b.p50_ms} ms, p99 ${b.p99_ms} ms, max ${b.max_ms} ms; ` +
        `API request → row updated p50 ${c.p50_ms} ms, p99 ${c.p99_ms} ms; no reload`,
    );
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    fs.writeFileSync(
      OUT,
      JSON.stringify({ benchmark: 'live', at: new Date().toISOString(), machine: { cpus: os.cpus().length, loadavg: os.loadavg() }, result }, null, 2),
    );
    console.log(`written ${OUT}`);
  } finally {
    await context.close().catch(() => {});
    tail.kill('SIGTERM');
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
