// Open aetool's page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) and make calls
// on its window.aetool: what the browser test (tests/test_web.py) and benchmark (benchmarks/web_speed.py) use.
//
//   node web/run_page.mjs < job.json > results.json
// job.json: {"url": "http://127.0.0.1:PORT/index.html?threads=1", "calls": [["run", NAME, DATA, DIMS],
//            ["prepare", NAME, RGBA, WIDTH, HEIGHT], ["time", NAME, SECONDS], ["open", [[FILENAME, BYTES], …]],
//            ["manifest"], ["js", EXPRESSION]], "chromium": PATH?,
//            "early": [CALL, …]?     calls begun before the models load (models.json is held back until then),
//            "missing": [PATH, …]?   files answered 404 Not Found (paths relative to the page's URL),
//            "replace": {PATH: TEXT}? files answered 200 with TEXT instead,
//            "unisolated": true?     the responses stripped of their COOP and COEP headers}
// Prints one JSON array, a result per call (the early calls' first); the page's console and errors go to stderr.
// Exit 1 when the page fails to load its models, after its status line.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const job = JSON.parse(fs.readFileSync(0, 'utf8'));
// No sandbox (CI runs as root); nothing reached over the network but the page's own server.
const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'aetool-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: job.chromium || '/usr/bin/chromium', headless: true, args,
});
let code = 0;
try {
  const page = await context.newPage();
  page.on('console', (m) => process.stderr.write(`[page] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[page error] ${e.message}\n`));
  let release = () => {};
  const held = new Promise((resolve) => { release = resolve; });
  await page.route('**/*', async (route) => {
    const url = route.request().url();
    if ((job.missing || []).some((p) => url === new URL(p, job.url).href)) return route.fulfill({ status: 404, body: '' });
    const replaced = Object.entries(job.replace || {}).find(([p]) => url === new URL(p, job.url).href);
    if (replaced) return route.fulfill({ status: 200, body: replaced[1] });
    if (job.early && url.endsWith('/models.json')) await held;
    if (!job.unisolated) return route.continue();
    const response = await route.fetch();
    const headers = { ...response.headers() };
    delete headers['cross-origin-opener-policy'];
    delete headers['cross-origin-embedder-policy'];
    return route.fulfill({ response, headers });
  });
  const call = ([m, ...a]) => page.evaluate(
    ([method, args]) => (method === 'manifest' ? window.aetool.manifest() : method === 'js' ? (0, eval)(args[0]) : window.aetool[method](...args)),
    [m, a],
  );
  await page.goto(job.url, { waitUntil: job.early ? 'domcontentloaded' : 'load' });
  const early = (job.early || []).map(call);
  await page.waitForTimeout(job.early ? 100 : 0); // the early calls begun in the page before models.json is let through
  release();
  const results = await Promise.all(early);
  try {
    await page.evaluate(() => window.aetool.ready);
  } catch (err) {
    const status = await page.evaluate(() => document.getElementById('status')?.textContent);
    throw new Error(`${err.message || err}\nstatus: ${status}`);
  }
  for (const c of job.calls) results.push(await call(c));
  await new Promise((resolve) => process.stdout.write(JSON.stringify(results), resolve)); // flushed before exit
} catch (err) {
  process.stderr.write(`${err.message || err}\n`);
  code = 1;
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
