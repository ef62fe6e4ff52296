// ONNX Runtime (npm onnxruntime-node) latency of one model that ../shared/reference/ort_export.py
// wrote, timed as ../shared/reference/ort_bench.js times each (5 warm-up runs, the median of 20),
// so that scripts/bench_vs_ort.sh can run it right beside qforge's run of the same model.
//   NODE_PATH=<cache>/node_modules node scripts/ort_one.js DIR THREADS NAME KIND N C H W
// NAME: resnet18_224, mobilenet_v2_28, ...; KIND: fp32 or qdq. Prints the median in ms.
const ort = require('onnxruntime-node');
const [dir, threads, name, kind, ...dims] = process.argv.slice(2);
const shape = dims.map(Number);
(async () => {
  const s = await ort.InferenceSession.create(`${dir}/${name}_${kind}.onnx`, {
    intraOpNumThreads: parseInt(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionMode: 'sequential'});
  const n = shape.reduce((a, b) => a * b);
  const feeds = {x: new ort.Tensor('float32', Float32Array.from({length: n}, () => Math.random() * 2 - 1), shape)};
  for (let i = 0; i < 5; i++) await s.run(feeds);
  const t = [];
  for (let i = 0; i < 20; i++) {
    const a = process.hrtime.bigint();
    await s.run(feeds);
    t.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  t.sort((a, b) => a - b);
  console.log(t[10].toFixed(3));
})();
