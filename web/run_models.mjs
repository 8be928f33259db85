// Run ONNX files on given inputs in onnxruntime-web, in Node or in headless Chromium (Debian's /usr/bin/chromium,
// through playwright-core): the onnxruntime-web columns of benchmarks/compat.py.
//
//   node web/run_models.mjs < job.json > results.json
// job.json: {"runner": "node" | "chromium", "ep": "wasm" | "webgpu", "threads": 1,
//            "url": "http://127.0.0.1:PORT/matrix.html?bundle=ort.min.js"   (chromium: a page that loaded `ort`),
//            "files": [{"file": PATH (node) or URL (chromium), "input": "image",
//                       "cases": [{"name": ..., "dims": [...], "data": BASE64 of float32}]}]}
// results.json: {"version": ..., "adapter": ..., "results": [{"file", "case", "outputs": {NAME: {"dims", "data"}}}
//                or {"file", "case", "error"}]}
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// One implementation for both runners; in Chromium it is evaluated inside the page, where `ort` is global.
async function runJobs(ort, ep, threads, files, load) {
  ort.env.wasm.numThreads = threads;
  const decode = (b64) => { const s = atob(b64), u = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i); return new Float32Array(u.buffer); };
  const encode = (a) => { const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength); let s = ''; for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000)); return btoa(s); };
  const reason = (e) => String((e && e.message) || e).split('\n').filter((l) => l.trim()).slice(0, 2).join(' | ').slice(0, 300);
  const create = async (file) => ort.InferenceSession.create(await load(file), { executionProviders: [ep] });
  const out = [];
  for (const f of files) {
    let session;
    try { session = await create(f.file); } catch (e) {
      for (const c of f.cases) out.push({ file: f.file, case: c.name, error: `cannot load: ${reason(e)}` });
      continue;
    }
    for (const c of f.cases) {
      try {
        const timeout = new Promise((_, no) => setTimeout(() => no(new Error('no answer in 120 s')), 120000));
        const results = await Promise.race([session.run({ [f.input]: new ort.Tensor('float32', decode(c.data), c.dims) }), timeout]);
        const outputs = {};
        for (const [name, t] of Object.entries(results)) outputs[name] = { dims: t.dims, data: encode(t.data) };
        out.push({ file: f.file, case: c.name, outputs });
      } catch (e) {
        out.push({ file: f.file, case: c.name, error: `fails to run: ${reason(e)}` });
        session = await create(f.file).catch(() => session); // a failed run can leave a WebGPU session stuck
      }
    }
  }
  return out;
}

// Exiting right after a write to a pipe would cut the output short: wait until it is flushed.
const print = (value) => new Promise((resolve) => process.stdout.write(JSON.stringify(value), resolve));
const job = JSON.parse(fs.readFileSync(0, 'utf8'));
if (job.runner === 'node') {
  const ort = await import('onnxruntime-web');
  const here = path.dirname(new URL(import.meta.url).pathname);
  const { version } = JSON.parse(fs.readFileSync(path.join(here, 'node_modules/onnxruntime-web/package.json'), 'utf8'));
  const results = await runJobs(ort, job.ep, job.threads, job.files, async (file) => fs.readFileSync(file));
  await print({ version: `onnxruntime-web ${version}, Node ${process.version}`, results });
  process.exit(0);
}
const { chromium } = await import('playwright-core');
const args = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
// WebGPU here has no GPU: SwiftShader's Vulkan on the CPU, which Chromium offers only with these flags.
args.push(...(job.ep === 'webgpu' ? ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'] : ['--disable-gpu']));
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'aetool-chromium-'));
const context = await chromium.launchPersistentContext(profile, { executablePath: job.chromium || '/usr/bin/chromium', headless: true, args });
try {
  const page = await context.newPage();
  page.on('pageerror', (e) => process.stderr.write(`[page error] ${e.message}\n`));
  await page.goto(job.url);
  const found = await page.evaluate(async () => {
    const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
    return { web: ort.env.versions.web, browser: navigator.userAgent.match(/Chrome\/[\d.]+/)[0], adapter: adapter ? [adapter.info.vendor, adapter.info.architecture, adapter.info.description].filter(Boolean).join(' ') || 'unnamed' : null };
  });
  const results = job.ep === 'webgpu' && !found.adapter ? job.files.flatMap((f) => f.cases.map((c) => ({ file: f.file, case: c.name, error: 'no WebGPU adapter in this browser' })))
    : await page.evaluate(async ([src, ep, threads, files]) => {
      const run = (0, eval)(`(${src})`);
      return run(ort, ep, threads, files, async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer()));
    }, [runJobs.toString(), job.ep, job.threads, job.files]);
  await print({ version: `onnxruntime-web ${found.web}, ${found.browser} headless`, adapter: found.adapter, results });
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(0);
