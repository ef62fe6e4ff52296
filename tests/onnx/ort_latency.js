// ONNX Runtime latency of an exported model: median of RUNS runs after 5 warm-ups, on random input.
//   node ort_latency.js MODEL.onnx N,C,H,W [THREADS=2] [RUNS=20] [spin|nospin]
// (NODE_PATH: where onnxruntime-node is). nospin: worker threads sleep instead of spinning between
// ops, which is faster on a machine whose cores are busy with other work.
const ort = require('onnxruntime-node');
(async () => {
  const [model, shapeArg, threadsArg, runsArg, spin] = process.argv.slice(2);
  const shape = shapeArg.split(',').map(Number), threads = parseInt(threadsArg || '2'), runs = parseInt(runsArg || '20');
  const s = await ort.InferenceSession.create(model, {intraOpNumThreads: threads, interOpNumThreads: 1,
                                                      graphOptimizationLevel: 'all', executionMode: 'sequential',
                                                      extra: {session: {intra_op: {allow_spinning: spin === 'nospin' ? '0' : '1'}}}});
  const n = shape.reduce((a, b) => a * b);
  const feeds = {input: new ort.Tensor('float32', Float32Array.from({length: n}, () => Math.random() * 2 - 1), shape)};
  for (let i = 0; i < 5; i++) await s.run(feeds);
  const t = [];
  for (let i = 0; i < runs; i++) {
    const a = process.hrtime.bigint();
    await s.run(feeds);
    t.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  t.sort((a, b) => a - b);
  console.log(JSON.stringify({model, ort: ort.env.versions.common, shape, threads, spin: spin !== 'nospin', median_ms: t[runs >> 1]}));
})().catch((e) => { console.error(`ort_latency: ${e.message}`); process.exit(2); });
