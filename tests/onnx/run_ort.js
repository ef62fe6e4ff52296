// Runs an exported ONNX model in ONNX Runtime (npm onnxruntime-node) on the inputs reference_logits
// wrote, and compares with qforge's logits:
//   node run_ort.js MODEL.onnx PREFIX int8 MAX_STEPS MIN_AGREE [OPTIMIZED.onnx]
//   node run_ort.js MODEL.onnx PREFIX float MAX_REL
// int8: the largest logit difference allowed, in quantization steps of the output (PREFIX.json's
// out_scale), and the smallest top-1 agreement (only that when the output layer stayed float). float: the largest difference allowed relative to
// the sample's largest |logit|. OPTIMIZED: where ONNX Runtime saves the graph it runs (its fusions).
// Prints one JSON line; exits 1 when a limit is exceeded, 2 on a usage or load error.
const fs = require('fs');
const ort = require('onnxruntime-node');

// Copies: a small file's Buffer is a view into a shared pool, at an offset that need not be aligned.
function readF32(path) {
  const b = fs.readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

function readI32(path) {
  const b = fs.readFileSync(path);
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

(async () => {
  const [model, prefix, kind, limitArg, agreeArg, optimized] = process.argv.slice(2);
  if (!model || !prefix || !['int8', 'float'].includes(kind) || limitArg === undefined ||
      (kind === 'int8' && agreeArg === undefined)) {
    console.error('usage: node run_ort.js MODEL.onnx PREFIX int8 MAX_STEPS MIN_AGREE [OPTIMIZED.onnx] | float MAX_REL');
    process.exit(2);
  }
  const limit = parseFloat(limitArg), minAgree = parseFloat(agreeArg);
  const meta = JSON.parse(fs.readFileSync(`${prefix}.json`, 'utf8'));
  // An int8 graph whose classifier stayed float (quant.skip) has no output step: agreement only.
  const stepped = kind === 'int8' && meta.out_scale > 0;
  const x = readF32(`${prefix}.input.f32`), ref = readF32(`${prefix}.logits.f32`);
  const opts = {intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all'};
  if (optimized) opts.optimizedModelFilePath = optimized;
  const s = await ort.InferenceSession.create(model, opts);
  const out = await s.run({input: new ort.Tensor('float32', x, meta.input)});
  const y = out.logits.data, n = meta.n, k = meta.classes;
  if (y.length !== n * k) throw new Error(`ONNX Runtime gave ${y.length} logits, expected ${n * k}`);
  const labelsPath = `${prefix}.labels.i32`;
  const labels = fs.existsSync(labelsPath) ? readI32(labelsPath) : null;
  let agree = 0, maxAbs = 0, maxRel = 0, ortRight = 0, qfRight = 0;
  const steps = {};
  for (let i = 0; i < n; i++) {
    let a = 0, b = 0, big = 0;
    for (let j = 0; j < k; j++) {
      const u = y[i * k + j], v = ref[i * k + j];
      if (u > y[i * k + a]) a = j;
      if (v > ref[i * k + b]) b = j;
      big = Math.max(big, Math.abs(v));
      const d = Math.abs(u - v);
      maxAbs = Math.max(maxAbs, d);
      if (stepped) {
        const st = Math.round(d / meta.out_scale);
        steps[st] = (steps[st] || 0) + 1;
      }
    }
    for (let j = 0; j < k; j++) maxRel = Math.max(maxRel, Math.abs(y[i * k + j] - ref[i * k + j]) / big);
    if (a === b) agree++;
    if (labels) {
      ortRight += a === labels[i];
      qfRight += b === labels[i];
    }
  }
  const r = {model, ort: ort.env.versions.common, kind, n, inputs: meta.inputs, top1_agreement: agree / n,
             max_abs_diff: maxAbs};
  if (labels) Object.assign(r, {top1_ort: ortRight / n, top1_qforge: qfRight / n});
  let ok;
  if (stepped) {
    r.out_scale = meta.out_scale;
    r.max_diff_steps = maxAbs / meta.out_scale;
    r.logits_by_step_difference = steps;
    ok = r.max_diff_steps <= limit + 1e-3 && r.top1_agreement >= minAgree;
  } else if (kind === 'int8') {
    r.float_output = true;
    ok = r.top1_agreement >= minAgree;
  } else {
    r.max_rel_diff = maxRel;
    ok = maxRel <= limit;
  }
  r.pass = ok;
  console.log(JSON.stringify(r));
  process.exit(ok ? 0 : 1);
})().catch((e) => {
  console.error(`run_ort: ${e.message}`);
  process.exit(2);
});
