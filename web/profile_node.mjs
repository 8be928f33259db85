// onnxruntime-web (wasm) in Node, profiled: where a model's time goes at batch 1, for benchmarks/web_speed.py.
//   node web/profile_node.mjs MODEL.onnx RUNS THREADS > profile.json
// Runs the model RUNS times on one 1×C×28×28 image of its channels after 20 unprofiled runs in another session,
// and ends profiling: onnxruntime-web writes its profile (JSON events per node) to standard output.
import * as ort from 'onnxruntime-web';
import fs from 'node:fs';

const [file, runs, threads] = process.argv.slice(2);
ort.env.wasm.numThreads = Number(threads);
const bytes = fs.readFileSync(file);
const feed = (session) => {
  const channels = 1;  // aetool's bundled models are grey
  const data = new Float32Array(channels * 784).map((_, i) => (i * 7919 % 1000) / 1000);
  return { [session.inputNames[0]]: new ort.Tensor('float32', data, [1, channels, 28, 28]) };
};
const warm = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
for (let i = 0; i < 20; i++) await warm.run(feed(warm));
const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], enableProfiling: true });
for (let i = 0; i < Number(runs); i++) await session.run(feed(session));
session.endProfiling();
process.exit(0);
