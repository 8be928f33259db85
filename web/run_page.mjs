// Open aetool's page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) and make calls
// on its window.aetool: what the browser test (tests/test_web.py) and benchmark (benchmarks/web_speed.py) use.
//
//   node web/run_page.mjs < job.json > results.json
// job.json: {"url": "http://127.0.0.1:PORT/index.html?threads=1", "calls": [["run", NAME, DATA, DIMS],
//            ["prepare", NAME, RGBA, WIDTH, HEIGHT], ["time", NAME, SECONDS], ["open", FILENAME, BYTES],
//            ["manifest"]], "chromium": PATH?}
// Prints one JSON array, a result per call; the page's console and errors go to stderr. Exit 1 when the page
// fails to load its models.
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
  await page.goto(job.url);
  await page.evaluate(() => window.aetool.ready);
  const results = [];
  for (const [method, ...rest] of job.calls) {
    results.push(await page.evaluate(([m, a]) => (m === 'manifest' ? window.aetool.manifest() : window.aetool[m](...a)), [method, rest]));
  }
  await new Promise((resolve) => process.stdout.write(JSON.stringify(results), resolve)); // flushed before exit
} catch (err) {
  process.stderr.write(`${err.message || err}\n`);
  code = 1;
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
