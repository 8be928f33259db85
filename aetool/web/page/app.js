// aetool's page: the bundled models run in this browser by onnxruntime-web (wasm); nothing leaves the page.
//
// An image is {channels, height, width, data}: C×H×W float32 in [0, 1], as aetool's runtime holds it
// (aetool/runtime/images.py). Each model gets it the way the runtime's image commands carry an image to a
// model (aetool/runtime/batch.py): converted to the model's channels (RGB → grey by luma, grey → RGB by
// replication), inverted when the model takes white-on-black images and this one is dark on light (judged by
// its border), then fitted to a model of one size (the MNIST fit: ink into a 20×20 box centred in 28×28; the
// page resamples with an antialiased bilinear filter where the runtime uses Lanczos) or padded to a multiple of
// the size for a convolutional model, with black (as the runtime pads for white-on-black models, which every
// bundled model is; it mirrors the images of as-is ones).
//
// Another page can load this script (after onnxruntime-web's ort.wasm.min.js, which defines the global `ort`)
// from wherever the site lies: models.json, models/ and ort/ are found beside this script, not beside the page.
// Everything is in this one closure but `window.aetool`, the same steps for that page, the tests
// (tests/test_web.py) and the benchmarks; the drawing pad, file picker, slider, cards and status line are set up
// only on a page whose script tag says `data-page` (index.html), where it has their elements.
(() => {
'use strict';

const LUMA = [0.299, 0.587, 0.114]; // Pillow's RGB → L weights (ITU-R 601-2), as aetool's runtime
const MNIST_BOX = 20 / 28;
const WHITE_ON_BLACK = 'white-on-black';
const MAX_SIDE = 512; // a dropped image is scaled down to this longer side: wasm runs a large page slowly
const SITE = new URL('.', document.currentScript ? document.currentScript.src : location.href); // app.js's folder
// The page's controls (pad, picker, slider, cards, status line) are app.js's only on a page whose script tag says
// so, `<script src="app.js" data-page>` (index.html's): another page's own elements of those ids stay its own.
const PAGE = Boolean(document.currentScript && 'page' in document.currentScript.dataset);
const $ = (id) => (PAGE ? document.getElementById(id) : null); // null where the page has no such element

// ?threads=N: wasm threads, a whole number from 1 to the cores the browser reports. More than one needs a
// cross-origin isolated page (the COOP and COEP headers `aetool web --serve` sends), which browsers grant in a
// secure context only (https, or localhost); without it onnxruntime-web runs on one, and the page says why.
function chooseThreads(asked, { isolated, secure, cores }) {
  const most = Math.max(1, cores || 1);
  const why = !secure ? 'threads need https or localhost' : 'threads need a cross-origin isolated page (COOP/COEP headers)';
  const auto = isolated ? Math.min(4, most) : 1;
  if (asked === null) return { threads: auto, note: isolated || most === 1 ? '' : why };
  const n = Number(asked);
  if (!/^\s*\d+\s*$/.test(asked) || n < 1) return { threads: auto, note: `?threads=${asked} is not a whole number ≥ 1` };
  if (n > 1 && !isolated) return { threads: 1, note: `?threads=${n}: ${why}` };
  if (n > most) return { threads: most, note: `?threads=${n} is more than the ${most} cores this browser reports` };
  return { threads: n, note: '' };
}
const params = new URLSearchParams(location.search);
const { threads, note: threadsNote } = chooseThreads(params.get('threads'), {
  isolated: self.crossOriginIsolated, secure: self.isSecureContext, cores: navigator.hardwareConcurrency,
});
// onnxruntime-web runs the models in a worker of its own, so that the page answers while a large image runs (a
// 512×512 one kept it from drawing or taking input for over a second); ?proxy=0 runs them on the page's thread,
// without the worker's messages (about 0.2 ms a run), as benchmarks/web_speed.py times onnxruntime-web itself.
const proxied = params.get('proxy') !== '0';

const state = {
  manifest: null, sessions: new Map(), failed: [], image: null, seed: 1, loadedMs: 0, rendering: null,
  loadLine: 'loading the models…', loadError: false, fileLine: null, fileError: false, slid: false,
};

// ---- images ----

function image(channels, height, width, data) {
  return { channels, height, width, data: data || new Float32Array(channels * height * width) };
}

function fromRGBA(rgba, width, height) {
  // Canvas pixels (RGBA bytes) → C×H×W in [0, 1]: transparent areas composited on the opposite of the ink
  // (white behind dark strokes, black behind light ones); three equal channels come back as one.
  const n = width * height;
  const colour = image(3, height, width);
  let weight = 0, inked = 0, opaque = true;
  for (let i = 0; i < n; i++) {
    const a = rgba[4 * i + 3] / 255;
    if (a < 1) opaque = false;
    weight += a;
    inked += a * (LUMA[0] * rgba[4 * i] + LUMA[1] * rgba[4 * i + 1] + LUMA[2] * rgba[4 * i + 2]) / 255;
  }
  const background = !opaque && weight && inked / weight < 0.5 ? 1 : 0;
  let grey = true;
  for (let i = 0; i < n; i++) {
    const a = opaque ? 1 : rgba[4 * i + 3] / 255;
    for (let c = 0; c < 3; c++) colour.data[c * n + i] = (rgba[4 * i + c] / 255) * a + background * (1 - a);
    grey = grey && colour.data[i] === colour.data[n + i] && colour.data[n + i] === colour.data[2 * n + i];
  }
  return grey ? image(1, height, width, colour.data.slice(0, n)) : colour;
}

function luma(img) {
  if (img.channels === 1) return img.data;
  const n = img.height * img.width, out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = LUMA[0] * img.data[i] + LUMA[1] * img.data[n + i] + LUMA[2] * img.data[2 * n + i];
  return out;
}

function toChannels(img, channels) {
  if (img.channels === channels) return img;
  if (channels === 1) return image(1, img.height, img.width, luma(img));
  const n = img.height * img.width, out = image(3, img.height, img.width);
  for (let c = 0; c < 3; c++) out.data.set(img.data.subarray(0, n), c * n);
  return out;
}

function isDarkOnLight(img) {
  // Whether the border is bright: dark ink on a light page, the opposite of MNIST (runtime: is_dark_on_light).
  const b = luma(img), h = img.height, w = img.width;
  const ring = Math.max(1, Math.floor(Math.min(h, w) / 14));
  let sum = 0, count = 0;
  const add = (y, x) => { sum += b[y * w + x]; count++; };
  for (let y = 0; y < ring; y++) for (let x = 0; x < w; x++) add(y, x);
  for (let y = h - ring; y < h; y++) for (let x = 0; x < w; x++) add(y, x);
  for (let y = 0; y < h; y++) for (let x = 0; x < ring; x++) add(y, x);
  for (let y = 0; y < h; y++) for (let x = w - ring; x < w; x++) add(y, x);
  return sum / count > 0.5;
}

function invert(img) {
  return image(img.channels, img.height, img.width, img.data.map((v) => 1 - v));
}

function taps(inSize, outSize) {
  // Antialiased bilinear weights along one axis (Pillow's BILINEAR): a triangle as wide as the scale factor.
  const scale = inSize / outSize, support = Math.max(1, scale), rows = [];
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale, from = Math.max(0, Math.floor(centre - support));
    const to = Math.min(inSize, Math.ceil(centre + support)), weights = [];
    let total = 0;
    for (let j = from; j < to; j++) {
      const wgt = Math.max(0, 1 - Math.abs((j + 0.5 - centre) / support));
      weights.push(wgt); total += wgt;
    }
    rows.push({ from, weights: weights.map((wgt) => wgt / total) });
  }
  return rows;
}

function resize(img, height, width) {
  const ys = taps(img.height, height), xs = taps(img.width, width), out = image(img.channels, height, width);
  const across = new Float32Array(img.height * width);
  for (let c = 0; c < img.channels; c++) {
    const plane = img.data.subarray(c * img.height * img.width, (c + 1) * img.height * img.width);
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < width; x++) {
        let v = 0;
        xs[x].weights.forEach((wgt, k) => { v += wgt * plane[y * img.width + xs[x].from + k]; });
        across[y * width + x] = v;
      }
    }
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let v = 0;
        ys[y].weights.forEach((wgt, k) => { v += wgt * across[(ys[y].from + k) * width + x]; });
        out.data[c * height * width + y * width + x] = Math.min(1, Math.max(0, v));
      }
    }
  }
  return out;
}

function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; // Python's round
}

function fit(img, height, width) {
  // The MNIST fit of a white-on-black image (runtime: images.fit): crop to the ink, longer side to 20/28 of the
  // model's shorter side, centred on black.
  const b = luma(img), h = img.height, w = img.width;
  let peak = 0;
  for (const v of b) peak = Math.max(peak, v);
  let top = h, left = w, bottom = -1, right = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (peak > 0 && b[y * w + x] < 0.5 * peak) continue;
      top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x);
    }
  }
  const crop = image(img.channels, bottom - top + 1, right - left + 1);
  for (let c = 0; c < img.channels; c++) {
    for (let y = 0; y < crop.height; y++) {
      for (let x = 0; x < crop.width; x++) {
        crop.data[(c * crop.height + y) * crop.width + x] = img.data[(c * h + top + y) * w + left + x];
      }
    }
  }
  const scale = MNIST_BOX * Math.min(height, width) / Math.max(crop.height, crop.width);
  const ih = Math.max(1, roundHalfEven(crop.height * scale)), iw = Math.max(1, roundHalfEven(crop.width * scale));
  return place(resize(crop, ih, iw), height, width, Math.floor((height - ih) / 2), Math.floor((width - iw) / 2));
}

function place(img, height, width, top, left) {
  // img on black, at (top, left) of a height × width image: padding when it fits at (0, 0).
  const out = image(img.channels, height, width);
  for (let c = 0; c < img.channels; c++) {
    for (let y = 0; y < img.height; y++) {
      const from = (c * img.height + y) * img.width;
      out.data.set(img.data.subarray(from, from + img.width), (c * height + top + y) * width + left);
    }
  }
  return out;
}

function crop(img, height, width) {
  const out = image(img.channels, height, width);
  for (let c = 0; c < img.channels; c++) {
    for (let y = 0; y < height; y++) {
      const from = (c * img.height + y) * img.width;
      out.data.set(img.data.subarray(from, from + width), (c * height + y) * width);
    }
  }
  return out;
}

function prepare(model, img) {
  // The image as the model takes it, and how to carry its output back (runtime: batch._read, Reconstruct).
  let x = toChannels(img, model.channels);
  const flip = model.polarity === WHITE_ON_BLACK && isDarkOnLight(x);
  if (flip) x = invert(x);
  let fed = x;
  if (model.size && (x.height !== model.size[0] || x.width !== model.size[1])) {
    fed = model.polarity === WHITE_ON_BLACK ? fit(x, ...model.size) : resize(x, ...model.size);
  } else if (!model.size) {
    const m = model.multiple_of || 1;
    fed = place(x, Math.ceil(x.height / m) * m, Math.ceil(x.width / m) * m, 0, 0);
  }
  const region = model.size ? [fed.height, fed.width] : [x.height, x.width];
  return { fed, flip, region };
}

function noisy(img, level, kind, seed) {
  // The noise the denoiser was trained on, as the runtime's add_noise: Gaussian of std `level` clipped to [0, 1];
  // salt-pepper, a fraction `level` of the pixels set to 0 or 1 with equal odds; mask, a fraction `level` set to 0.
  // From a seeded generator (mulberry32 + Box–Muller), not the runtime's: the same kind of noise, not the same draw.
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const noise = {
    'salt-pepper': (v) => (uniform() < level ? (uniform() < 0.5 ? 0 : 1) : v),
    mask: (v) => (uniform() < level ? 0 : v),
    gaussian: (v) => {
      const g = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
      return Math.min(1, Math.max(0, v + level * g));
    },
  }[kind || 'gaussian'];
  return image(img.channels, img.height, img.width, img.data.map(noise));
}

// What a denoiser's input shows: "input + noise σ 0.3", "input + salt-pepper 0.2".
const noiseLabel = (kind, sigma) => `input + ${!kind || kind === 'gaussian' ? 'noise σ' : kind} ${level(sigma)}`;

// ---- models ----

async function run(name, data, dims) {
  // Every output of one session run on an N×C×H×W float32 batch, by name. A copy of `data` goes: the worker
  // takes its tensor's buffer, which leaves that buffer empty here.
  const session = state.sessions.get(name);
  const results = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', data.slice(), dims) });
  return Object.fromEntries(Object.entries(results).map(([key, t]) => [key, { dims: t.dims, data: t.data }]));
}

async function fetched(path) {
  // A file of the site: its response, or an error that names it and where it was asked for ("models.json: HTTP
  // 404 Not Found (URL)": a site served under a sub-path shows where it was looked for).
  const url = new URL(path, SITE).href;
  const response = await fetch(url);
  const status = `${response.status} ${response.statusText}`.trim();
  if (!response.ok) throw new Error(`${path}: HTTP ${status} (${url})`);
  return response;
}

async function readManifest() {
  // models.json as `aetool web` writes it: {"onnxruntime_web", "models": [{"name", "file", …}, …]}, else an error
  // that names it (a server's HTML fallback page, a cut or hand-edited file).
  const url = new URL('models.json', SITE).href, text = await (await fetched('models.json')).text();
  let manifest;
  try {
    manifest = JSON.parse(text);
  } catch (err) {
    throw new Error(`models.json (${url}) is not JSON: ${err.message}`);
  }
  const models = manifest && manifest.models;
  const entries = Array.isArray(models) && models.every((m) => m && typeof m.name === 'string' && typeof m.file === 'string');
  if (!entries || !models.length) {
    throw new Error(`models.json (${url}) lists no models: it wants {"models": [{"name": …, "file": …}, …]}, as aetool web writes it`);
  }
  return manifest;
}

async function load() {
  // Every model of models.json, fetched at once, its session made and run once in turn; a model that cannot be
  // fetched or made is left off (state.failed says why) and the others run. Rejects when none can.
  if (typeof ort === 'undefined') throw new Error('onnxruntime-web is not loaded (ort/ort.wasm.min.js before app.js)');
  ort.env.wasm.wasmPaths = new URL('ort/', SITE).href; // ort-wasm-simd-threaded.{mjs,wasm} beside this script
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = proxied;
  const manifest = await readManifest();
  const started = performance.now();
  const files = manifest.models.map((model) => fetched(model.file).then((r) => r.arrayBuffer()));
  files.forEach((file) => file.catch(() => {})); // each failure is met below, in its model's turn
  const loaded = [];
  for (const [i, model] of manifest.models.entries()) {
    try {
      const bytes = new Uint8Array(await files[i]);
      const t0 = performance.now();
      state.sessions.set(model.name, await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] }));
      const t1 = performance.now();
      // One run at load: a page's first runs pay for V8 optimising the wasm (the first bool → float Cast alone
      // costs a few hundred ms), so the first image drawn does not.
      const [c, h, w] = [model.channels, ...(model.size || [28, 28])];
      await run(model.name, new Float32Array(c * h * w), [1, c, h, w]);
      model.warmup = { create_ms: t1 - t0, first_run_ms: performance.now() - t1 };
      loaded.push(model);
    } catch (err) {
      state.sessions.delete(model.name);
      const reason = err.message || String(err);
      if (reason.includes('no available backend')) { // the same for every model: said once, with where it looked
        throw new Error(`onnxruntime-web could not start from ${ort.env.wasm.wasmPaths} (ort-wasm-simd-threaded.mjs ` +
          `and .wasm must be served there): ${reason.slice(0, 300)}`);
      }
      state.failed.push(`${model.name} (${reason})`);
    }
  }
  if (!loaded.length) throw new Error(`no model could be loaded: ${state.failed.join('; ')}`);
  state.manifest = { ...manifest, models: loaded };
  state.loadedMs = performance.now() - started;
}

async function timeModel(name, seconds) {
  // Per-image time at batch 1 after 20 warm-up runs: single runs for `seconds` (at least 200), median and p10.
  const model = state.manifest.models.find((m) => m.name === name);
  const [c, h, w] = [model.channels, ...(model.size || [28, 28])];
  const data = new Float32Array(c * h * w).map((_, i) => (i * 7919 % 1000) / 1000);
  for (let i = 0; i < 20; i++) await run(name, data, [1, c, h, w]);
  const times = [], end = performance.now() + seconds * 1000;
  while (performance.now() < end || times.length < 200) {
    const t0 = performance.now();
    await run(name, data, [1, c, h, w]);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return {
    name, threads, runs: times.length, median_ms: times[times.length >> 1],
    p10_ms: times[Math.floor(times.length / 10)], ...model.warmup, load_all_ms: state.loadedMs,
    crossOriginIsolated: self.crossOriginIsolated,
  };
}

// ---- the page ----

let shown = 0; // images drawn so far, for their captions' ids

function show(img, label) {
  const figure = document.createElement('figure'), canvas = document.createElement('canvas');
  canvas.width = img.width; canvas.height = img.height;
  const ctx = canvas.getContext('2d'), pixels = ctx.createImageData(img.width, img.height), n = img.width * img.height;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) pixels.data[4 * i + c] = Math.round(255 * img.data[(img.channels === 3 ? c : 0) * n + i]);
    pixels.data[4 * i + 3] = 255;
  }
  ctx.putImageData(pixels, 0, 0);
  const caption = document.createElement('figcaption');
  caption.textContent = label;
  caption.id = `caption-${++shown}`;
  canvas.setAttribute('role', 'img'); // an image to a screen reader, named by its caption (a nameless canvas before)
  canvas.setAttribute('aria-labelledby', caption.id);
  figure.append(canvas, caption);
  return figure;
}

// The outputs the page draws, by name. A model's other outputs (the code) are not drawn. A detector's
// score and `anomaly_map` are not drawn either: the page shows its reconstruction (README, In the browser).
const VIEWS = {
  reconstruction: (out, prepared) => {
    const back = crop(out, ...prepared.region);
    return show(prepared.flip ? invert(back) : back, 'output');
  },
};

// A noise level as shown: three decimals at most (25/255 is 0.098).
const level = (sigma) => String(Number(Number(sigma).toFixed(3)));

let renders = 0; // render() calls so far: a call that a later one overtook stops drawing
let opening = 0; // files opened and digits drawn so far: a file whose decoding a later one overtook is not shown

async function render() {
  // The cards of state.image, once the models are loaded (an image given while they load waits for them).
  const cards = $('cards'), results = $('results');
  if (!state.image || !cards) return;
  const mine = ++renders;
  try {
    await ready;
  } catch {
    return; // the status line says why no model runs
  }
  if (mine !== renders || !state.image) return;
  // busy while the cards are rebuilt: a screen reader announces the live region once, when it is done (each
  // step of the noise slider rebuilt it card by card)
  results?.setAttribute('aria-busy', 'true');
  try {
    await drawCards(cards, () => mine === renders);
  } finally {
    if (mine === renders) results?.setAttribute('aria-busy', 'false');
  }
}

// The cards, one per model; `current()` turns false once a later render() began (five slider events in one task
// left each model's card five times, their runs awaited in turn).
async function drawCards(cards, current) {
  cards.replaceChildren();
  const sigma = Number($('sigma')?.value ?? 0.5);
  for (const model of state.manifest.models) {
    const card = document.createElement('div'), images = document.createElement('div');
    card.className = 'card'; images.className = 'images';
    const prepared = prepare(model, state.image);
    const input = model.role === 'denoise' ? noisy(prepared.fed, sigma, model.noise_kind, state.seed) : prepared.fed;
    const seen = crop(input, ...prepared.region);
    images.append(show(prepared.flip ? invert(seen) : seen, model.role === 'denoise' ? noiseLabel(model.noise_kind, sigma) : 'input'));
    const t0 = performance.now();
    const outputs = await run(model.name, input.data, [1, input.channels, input.height, input.width]);
    if (!current()) return;
    const ms = performance.now() - t0;
    for (const [name, out] of Object.entries(outputs)) {
      if (VIEWS[name]) images.append(VIEWS[name](image(out.dims[1], out.dims[2], out.dims[3], out.data), prepared));
    }
    const title = document.createElement('h3'), about = document.createElement('p');
    title.textContent = `${model.name} (${model.role === 'denoise' ? 'denoised' : 'reconstructed'})`;
    const mse = model.test_mse != null ? `, test MSE ${Number(model.test_mse).toFixed(5)}` : '';
    about.textContent = `${model.summary}${mse}; ${ms.toFixed(1)} ms in this browser`;
    card.append(title, about, images);
    cards.append(card);
  }
}

function showStatus() {
  // The status line: the models' state, or the last file opened, and the models left off.
  const status = $('status');
  if (!status) return;
  const line = state.loadError ? state.loadLine : state.fileLine ?? state.loadLine;
  const waiting = state.fileLine && !state.loadError && !state.manifest ? '; the models are still loading' : '';
  const lead = line.endsWith('.') ? ' Left off' : '; left off'; // after "Draw a digit." it read ".; left off" (a trial)
  const failed = state.failed.length && !state.loadError ? `${lead}: ${state.failed.join('; ')}` : '';
  status.className = state.loadError || state.fileError || state.failed.length ? 'error' : '';
  status.textContent = line + waiting + failed;
}

function showImage(img, fileLine, fileError = false) {
  // `img` as the page's input (null: none), its status line (null: a drawing; an error when `fileError`), and its
  // cards.
  state.image = img;
  state.fileLine = fileLine;
  state.fileError = fileError;
  if (!img) {
    ++renders; // a render under way stops
    $('cards')?.replaceChildren();
    $('results')?.setAttribute('aria-busy', 'false');
  }
  showStatus();
  return render();
}

function setupPad() {
  const pad = $('pad');
  if (!pad) return;
  const ctx = pad.getContext('2d');
  const clear = () => { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, pad.width, pad.height); };
  clear();
  let drawing = false;
  const at = (e) => { const r = pad.getBoundingClientRect(); return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height]; };
  pad.addEventListener('pointerdown', (e) => {
    drawing = true; pad.setPointerCapture(e.pointerId);
    ctx.strokeStyle = '#fff'; ctx.lineWidth = 20; ctx.lineCap = ctx.lineJoin = 'round';
    ctx.beginPath(); ctx.moveTo(...at(e)); ctx.lineTo(...at(e)); ctx.stroke();
  });
  pad.addEventListener('pointermove', (e) => { if (drawing) { ctx.lineTo(...at(e)); ctx.stroke(); } });
  pad.addEventListener('pointerup', () => {
    drawing = false;
    ++opening; // a file still decoding is not shown over the digit
    const drawn = fromRGBA(ctx.getImageData(0, 0, pad.width, pad.height).data, pad.width, pad.height);
    showImage(fit(drawn, 28, 28), null); // a digit the size of MNIST's, for every model
  });
  $('clear')?.addEventListener('click', () => { clear(); ++opening; showImage(null, null); });
}

async function openFile(file) {
  // The file as the page's input; a file opened after it while it decodes is shown instead.
  const mine = ++opening;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file); // EXIF orientation applied, colours in sRGB
  } catch (err) { // not an image, or one this browser cannot decode (TIFF, say): no stale results stay up
    if (mine !== opening) return;
    showImage(null, `${file.name}: not an image this browser can decode (${err.message || err})`, true);
    return;
  }
  if (mine !== opening) {
    bitmap.close();
    return;
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * scale)), height = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = new OffscreenCanvas(width, height), ctx = canvas.getContext('2d');
  ctx.drawImage(bitmap, 0, 0, width, height);
  const note = scale < 1 ? ` (scaled down from ${bitmap.width}×${bitmap.height})` : '';
  bitmap.close();
  await showImage(fromRGBA(ctx.getImageData(0, 0, width, height).data, width, height), `${file.name}: ${width}×${height}${note}`);
}

function setupInputs() {
  const sigma = $('sigma'), value = $('sigma-value');
  if (sigma) {
    if (value) value.textContent = level(sigma.value);
    sigma.addEventListener('input', () => {
      state.slid = true;
      if (value) value.textContent = level(sigma.value);
      state.rendering = render();
    });
  }
  $('reseed')?.addEventListener('click', () => { state.seed += 1; render(); });
  const picker = $('file');
  picker?.addEventListener('change', () => {
    const file = picker.files[0];
    picker.value = ''; // emptied, so that choosing the same file again (edited since, say) opens it again
    if (file) openFile(file);
  });
  if (!$('cards')) return;
  document.body.addEventListener('dragover', (e) => { e.preventDefault(); document.body.classList.add('dropping'); });
  document.body.addEventListener('dragleave', () => document.body.classList.remove('dropping'));
  document.body.addEventListener('drop', (e) => {
    e.preventDefault(); document.body.classList.remove('dropping');
    if (e.dataTransfer.files[0]) openFile(e.dataTransfer.files[0]);
  });
}

function loaded() {
  // The page once the models are loaded: its status line, footer and the noise slider's start.
  const plural = threads > 1 ? 's' : '';
  state.loadLine = `${state.manifest.models.map((m) => m.name).join(', ')} loaded and warmed up in ` +
    `${(state.loadedMs / 1000).toFixed(2)} s; onnxruntime-web ${state.manifest.onnxruntime_web || ''} (wasm` +
    `${proxied ? ' in a worker' : ''}, ` +
    `${threads} thread${plural}${threadsNote ? `: ${threadsNote}` : ''}). Draw a digit.`;
  const about = $('about');
  if (about) {
    about.textContent = `Made by aetool web. Models: ${state.manifest.models.map((m) => m.name + (m.target ? ` (${m.target} export)` : '')).join(', ')}.`;
  }
  const sigma = $('sigma'), denoiser = state.manifest.models.find((m) => m.role === 'denoise');
  if (sigma && !state.slid) {
    sigma.value = denoiser ? denoiser.noise : 0.5; // the trained level itself: the slider takes any value (step any)
    if ($('sigma-value')) $('sigma-value').textContent = level(sigma.value);
  }
  if (state.failed.length) console.warn(`left off the page: ${state.failed.join('; ')}`);
  showStatus();
}

function notLoaded(err) {
  state.loadError = true;
  state.loadLine = `could not load the models: ${err.message || err}` +
    (location.protocol === 'file:' ? ' (open the page over http, e.g. aetool web -o site --serve 8000)' : '');
  console.error(state.loadLine);
  showStatus();
  throw err;
}

const ready = load().then(loaded, notLoaded); // the page takes input at once; what it is given waits for this
// The status line says why the models did not load; unhandled, the rejection was an uncaught error in the console
// too (a trial). Callers awaiting window.aetool.ready still see it.
ready.catch(() => {});
setupPad();
setupInputs();

function onPage(name) {
  // The entry of a model the page has loaded, else an error that says why not.
  if (!state.manifest) throw new Error('the models are not loaded yet: await window.aetool.ready first');
  const model = state.manifest.models.find((m) => m.name === name);
  if (!model) throw new Error(`no model ${JSON.stringify(name)} on this page; it has ${state.manifest.models.map((m) => m.name).join(', ')}`);
  return model;
}

// For other pages (README: The page in a site of your own), tests (tests/test_web.py, web/run_page.mjs) and
// benchmarks (benchmarks/web_speed.py).
window.aetool = {
  ready,
  manifest: () => state.manifest,
  threads,
  proxied,
  run: async (name, data, dims) => {
    onPage(name);
    const outputs = await run(name, Float32Array.from(data), dims);
    return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, { dims: v.dims, data: Array.from(v.data) }]));
  },
  prepare: (name, rgba, width, height) => {
    const model = onPage(name);
    if (rgba.length !== 4 * width * height) {
      throw new Error(`rgba holds ${rgba.length} values; a ${width}×${height} image has 4 × ${width} × ${height} = ${4 * width * height}`);
    }
    const { fed, flip } = prepare(model, fromRGBA(Uint8ClampedArray.from(rgba), width, height));
    return { dims: [1, fed.channels, fed.height, fed.width], data: Array.from(fed.data), flip };
  },
  time: timeModel,
  noisy: (data, dims, level, kind, seed) => Array.from(noisy(image(dims[1], dims[2], dims[3], Float32Array.from(data)), level, kind, seed).data),
  slide: async (values) => { // the noise slider moved through `values` in one task; the cards it leaves
    const sigma = $('sigma');
    for (const v of values) { sigma.value = v; sigma.dispatchEvent(new Event('input')); }
    await state.rendering;
    return $('cards').children.length;
  },
  open: async (files) => { // files [[name, bytes], …] opened in one task, as a picker opens each; what the page shows
    await Promise.all(files.map(([name, bytes]) => openFile(new File([Uint8Array.from(bytes)], name))));
    const cards = $('cards');
    const images = [...cards.querySelectorAll('canvas')].map((canvas) => ({
      role: canvas.getAttribute('role'), name: $(canvas.getAttribute('aria-labelledby'))?.textContent,
    }));
    const busy = $('results').getAttribute('aria-busy');
    return { status: $('status').textContent, error: $('status').className === 'error', cards: cards.children.length, images, busy };
  },
};
})();
