// Two console replicas behind a round-robin proxy, in apt's headless Chromium, against
// the stack of `ritma up` (its controller, database and bus).
//
// What a team behind a load balancer relies on: a sign-in through the balancer holds
// on every replica (sessions live in PostgreSQL), a replica restarted mid-way signs
// nobody out, the browser's live stream survives the death of the replica it was on
// (it reconnects through the balancer to the other one) without losing the state
// change made meanwhile, and signing out through one replica ends the session on all.
//
// Inputs (environment): RITMA_STACK_FILE, CARGO_TARGET_DIR, RITMA_E2E_PROFILE, CHROMIUM,
// as for console.test.mjs. The console binary and its site come from
// $CARGO_TARGET_DIR/<profile>/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort, waitFor } from './helpers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
const STACK_FILE = process.env.RITMA_STACK_FILE || path.join(ROOT, '.ritma/dev/stack.json');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = path.join(ROOT, 'tests/output');
const SESSION_COOKIE = 'ritma_console_session';

// The profile whose console was built (e2e.sh builds the one it runs).
function binDir() {
  for (const profile of [process.env.RITMA_E2E_PROFILE, 'debug', 'release'].filter(Boolean)) {
    const dir = path.join(TARGET, profile);
    if (fs.existsSync(path.join(dir, 'ritma-console')) && fs.existsSync(path.join(dir, 'site'))) return dir;
  }
  return null;
}

function nodeCommand(dir) {
  const standalone = path.join(dir, 'ritma-node');
  if (fs.existsSync(standalone)) return [standalone, []];
  const cli = path.join(dir, 'ritma');
  return fs.existsSync(cli) ? [cli, ['node']] : null;
}


/// A round-robin HTTP balancer on loopback, as nginx or a cloud balancer without
/// affinity: each request goes to the next replica; a refused connection moves on
/// to the next one (proxy_next_upstream); a stream whose replica dies is cut.
function startBalancer(port, replicas) {
  let next = 0;
  const served = new Map(); // replica port -> requests
  const liveStreams = []; // replica port of each /live stream, in order
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const attempt = (left) => {
        const to = replicas[next++ % replicas.length];
        const up = http.request(
          { host: '127.0.0.1', port: to, method: req.method, path: req.url, headers: req.headers },
          (r) => {
            served.set(to, (served.get(to) || 0) + 1);
            if (req.url.startsWith('/live')) liveStreams.push(to);
            res.writeHead(r.statusCode, r.headers);
            pipeline(r, res, (err) => err && res.destroy());
          },
        );
        up.on('error', (e) => {
          if (!res.headersSent && left > 1 && e.code === 'ECONNREFUSED') attempt(left - 1);
          else res.destroy();
        });
        up.end(body);
      };
      attempt(replicas.length);
    });
  });
  return new Promise((resolve) =>
    server.listen(port, '127.0.0.1', () => resolve({ server, served, liveStreams })),
  );
}

let stack;
let dir;
let balancer;
let base;
let context;
let page;
const consoles = new Map(); // port -> child
const spawned = [];

function startConsole(port) {
  const child = spawn(path.join(dir, 'ritma-console'), [], {
    env: {
      ...process.env,
      RITMA_CONSOLE_LISTEN: `127.0.0.1:${port}`,
      RITMA_CONSOLE_SITE: path.join(dir, 'site'),
      RITMA_API_URL: stack.api_url,
      RITMA_CONSOLE_DATABASE_URL: stack.database_url,
      RITMA_API_TOKEN: stack.admin_token,
      RITMA_NATS_URL: stack.nats_url,
      RITMA_CONSOLE_SERVICE_TOKEN_FILE: path.join(stack.data_dir, 'console.token'),
      RITMA_ORG: stack.org,
      RITMA_CONSOLE_PUBLIC_URL: base,
      RITMA_LOG: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  consoles.set(port, child);
  return waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 30000, `console on ${port}`);
}

async function stopConsole(port, signal) {
  const child = consoles.get(port);
  consoles.delete(port);
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

const api = (p, init = {}) =>
  fetch(`${stack.api_url}${p}`, {
    ...init,
    headers: {
      authorization: `Bearer ${stack.admin_token}`,
      ...(init.body ? { 'content-type': 'application/json' } : {}),
    },
  });

async function hydrated() {
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30000 });
}

let skip = null;
let org;
let nodeId;
let node;
let replicaPorts;

before(async () => {
  stack = JSON.parse(fs.readFileSync(STACK_FILE, 'utf8'));
  dir = binDir();
  const nodeCmd = dir && nodeCommand(dir);
  if (stack.fake || !dir || !nodeCmd || !stack.database_url) {
    skip = 'needs the stack of `ritma up`, a built console and a node binary';
    return;
  }
  // An org of this test's own, with one node heartbeating every second.
  org = `e2e-rep-${Date.now().toString(36)}`;
  let r = await api('/api/orgs', { method: 'POST', body: JSON.stringify({ id: org, name: 'E2E Replicas' }) });
  assert.equal(r.status, 201, `create org: ${r.status} ${await r.text()}`);
  r = await api(`/api/orgs/${org}/enrollment-tokens`, {
    method: 'POST',
    body: JSON.stringify({ tenant_id: 'prod', max_uses: 1, ttl_secs: 600 }),
  });
  assert.equal(r.status, 201);
  const token = (await r.json()).token;
  nodeId = `${org}-node`;
  node = spawn(nodeCmd[0], nodeCmd[1], {
    env: {
      ...process.env,
      RITMA_NODE_CONTROLLER_URL: stack.api_url,
      RITMA_ENROLL_TOKEN: token,
      RITMA_STATE_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'ritma-e2e-rep-node-')),
      RITMA_NODE_ID: nodeId,
      RITMA_HEARTBEAT_SECS: '1',
    },
    stdio: 'ignore',
  });
  spawned.push(node);

  replicaPorts = [await freePort(), await freePort()];
  const balancerPort = await freePort();
  base = `http://127.0.0.1:${balancerPort}`;
  balancer = await startBalancer(balancerPort, replicaPorts);
  await Promise.all(replicaPorts.map(startConsole));
  await waitFor(
    async () => {
      const res = await api(`/api/orgs/${org}/nodes/${nodeId}`);
      return res.ok && (await res.json()).status === 'online';
    },
    60000,
    `${nodeId} online in ${org}`,
  );
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ritma-e2e-rep-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => console.error('[browser error]', e.message));
});

after(async () => {
  await context?.close().catch(() => {});
  for (const p of spawned) p.kill('SIGTERM');
  for (const port of [...consoles.keys()]) await stopConsole(port, 'SIGTERM');
  balancer?.server.close();
});

test('sign-in through the balancer holds on both replicas, and across a replica restart', async (t) => {
  if (skip) return t.skip(skip);
  await page.goto(`${base}/nodes`);
  assert.match(page.url(), /\/login/, 'signed-out pages send to the sign-in page');
  await page.fill('#token', stack.admin_token);
  await Promise.all([page.waitForURL(/\/nodes$/), page.click('button[type=submit]')]);
  // The org switch is a session write on one replica, read by the other.
  await page.waitForSelector(`#org-select option[value="${org}"]`, { state: 'attached', timeout: 15000 });
  await page.selectOption('#org-select', org);
  await Promise.all([page.waitForURL(new RegExp(`${base}/?$`)), page.click('form.org button[type=submit]')]);

  const pages = ['/', '/nodes', `/nodes/${nodeId}`, '/audit', '/usage'];
  const before = new Map(balancer.served);
  for (let i = 0; i < 50; i++) {
    if (i === 25) {
      // A rolling upgrade: one replica stops and comes back; nobody is signed out.
      await stopConsole(replicaPorts[0], 'SIGTERM');
      await startConsole(replicaPorts[0]);
    }
    const p = pages[i % pages.length];
    const res = await page.goto(`${base}${p}`);
    assert.equal(res.status(), 200, `load ${i} of ${p}`);
    assert.ok(!/\/login/.test(page.url()), `load ${i} of ${p} stayed signed in (at ${page.url()})`);
  }
  for (const port of replicaPorts) {
    const n = (balancer.served.get(port) || 0) - (before.get(port) || 0);
    assert.ok(n >= 10, `replica ${port} served ${n} of the page loads`);
  }
  // Every replica shows the org chosen on one of them.
  await page.goto(`${base}/nodes`);
  await hydrated();
  await page.waitForSelector(`tr[data-node-id="${nodeId}"]`, { timeout: 15000 });
});

test('the live stream survives the death of its replica and loses no state change', async (t) => {
  if (skip) return t.skip(skip);
  await page.goto(`${base}/nodes`);
  await hydrated();
  await page.waitForSelector('body[data-live="open"]', { timeout: 30000 });
  const row = `tr[data-node-id="${nodeId}"]`;
  await page.waitForSelector(`${row}[data-status="online"]`, { timeout: 15000 });
  await page.evaluate(() => {
    window.__ritmaNoReload = 'still-here';
  });
  const streamsBefore = balancer.liveStreams.length;
  const streamReplica = balancer.liveStreams[streamsBefore - 1];
  assert.ok(replicaPorts.includes(streamReplica), 'the stream went through the balancer');

  // The stream's replica dies; the node dies right after, while the browser is
  // still reconnecting: its offline transition must reach the page all the same.
  const t0 = Date.now();
  await stopConsole(streamReplica, 'SIGKILL');
  node.kill('SIGKILL');
  await page.waitForSelector(`${row}[data-status="offline"]`, { timeout: 60000 });
  console.log(`# ${nodeId} shown offline ${Date.now() - t0} ms after its stream's replica and the node were killed`);
  await page.waitForSelector('body[data-live="open"]', { timeout: 30000 });
  const resumedOn = balancer.liveStreams.slice(streamsBefore);
  assert.ok(resumedOn.length >= 1, 'the browser opened a new stream');
  assert.ok(
    resumedOn.every((p) => p !== streamReplica),
    `the new stream is on the surviving replica (${resumedOn} vs killed ${streamReplica})`,
  );
  assert.equal(await page.evaluate(() => window.__ritmaNoReload), 'still-here', 'page was not reloaded');
  fs.mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, 'console-replicas-failover.png'), fullPage: true });
  // Back to two replicas for the sign-out check.
  await startConsole(streamReplica);
});

test('signing out through one replica ends the session on every replica', async (t) => {
  if (skip) return t.skip(skip);
  const cookie = (await context.cookies(base)).find((c) => c.name === SESSION_COOKIE);
  assert.ok(cookie, 'signed in: the session cookie is set');
  const asSession = (port) =>
    fetch(`http://127.0.0.1:${port}/nodes`, {
      headers: { cookie: `${SESSION_COOKIE}=${cookie.value}` },
      redirect: 'manual',
    });
  for (const port of replicaPorts) {
    const res = await asSession(port);
    assert.equal(res.status, 200, `replica ${port} knows the session before sign-out`);
  }
  await page.goto(`${base}/`);
  await hydrated();
  await Promise.all([page.waitForURL(/\/login/), page.click('form[action="/auth/logout"] button')]);
  for (const port of replicaPorts) {
    const res = await asSession(port);
    assert.ok(
      res.status >= 300 && res.status < 400 && /\/login/.test(res.headers.get('location') || ''),
      `replica ${port} refuses the ended session (${res.status} ${res.headers.get('location')})`,
    );
  }
});
