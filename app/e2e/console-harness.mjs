// Shared by the console's browser tests (console*.test.mjs): the stack file, the
// console (the running one, or RITMA_CONSOLE_BIN started here), a headless Chromium
// page, and the page helpers. Each test file calls `consoleStack()` once at its top
// level: the console and the browser are set up before its tests and torn down
// after them, per file. Inputs (environment): see console.test.mjs.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort, signIn, waitFor } from './helpers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
const STACK_FILE = process.env.RITMA_STACK_FILE || path.join(ROOT, '.ritma/dev/stack.json');
const CONSOLE_BIN = process.env.RITMA_CONSOLE_BIN || path.join(TARGET, 'release/ritma-console');
// the node daemon: RITMA_NODE_BIN, else ritma-node, else `ritma node`
export function nodeCommand() {
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
export let LIVE_TIMEOUT = Number(process.env.RITMA_E2E_OFFLINE_TIMEOUT_MS || 60000);
// demo nodes in stack.json carry `name` (= node id, RITMA_NODE_ID) or `id`
export const nodeId = (n) => n.id || n.name;

export let stack;
export let base;
let consoleProc;
let consoleLog = '';
export let context;
export let page;
export const spawned = [];

export async function shot(name) {
  fs.mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, `console-${name}.png`), fullPage: true });
}

// A figure as the console prints it (`26,920`) as a number.
export const countOf = (text) => Number(text.trim().replace(/,/g, ''));

export async function hydrated() {
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30000 });
}

export async function liveOpen() {
  await page.waitForSelector('body[data-live="open"]', { timeout: 30000 });
}

export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- fleet operations

export const api = (p, init = {}) =>
  fetch(`${stack.api_url}${p}`, {
    ...init,
    headers: {
      authorization: `Bearer ${stack.admin_token}`,
      ...(init.body ? { 'content-type': 'application/json' } : {}),
      ...(init.headers || {}),
    },
  });
export const FLEET_TIMEOUT = 60000;
export const HELD = 'demo-db-1';
export const demoIds = () => stack.nodes.map(nodeId);
// a demo node that applies its policy (not the held one)
export const applyingNode = () => (demoIds().includes('demo-web-1') ? 'demo-web-1' : demoIds().find((id) => id !== HELD));

// Set up the console and the browser before this file's tests, tear them down after.
// With `signedIn`, the page is signed in with the admin token before the tests (the
// files after console.test.mjs start in a fresh browser profile).
export function consoleStack({ signedIn = false } = {}) {
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
    if (signedIn) await signIn(page, base, stack.admin_token);
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
}
