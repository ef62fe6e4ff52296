"""Checks a model qforge exported to ONNX (tests/onnx/test_onnx_export.sh runs it with /usr/bin/python3).

  check_onnx.py MODEL.onnx int8|float [ORT_OPTIMIZED.onnx]

The onnx checker (full_check: types and shapes inferred); opset 13 and IR version 7; for int8 the
QDQ structure the export promises: each Conv / Gemm reads an int8 weight initializer through a
DequantizeLinear per output channel (axis 0, zero points 0) and an int32 bias at scale
input_scale x weight_scale[c]; each float op's result is requantized to uint8 by a QuantizeLinear,
at most through a Relu or Clip(0, 6). With ORT_OPTIMIZED (the model ONNX Runtime saved after its
graph optimizations): every Conv became a QLinearConv and no Relu / Clip is left. A layer kept
in float (quant.skip) is a Conv / Gemm with float initializers and is not requantized. Prints a summary
line; exits 1 on the first failed check.
"""
import sys
from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper


def fail(msg):
    print(f"check_onnx: {msg}")
    sys.exit(1)


def main():
    path, kind = sys.argv[1], sys.argv[2]
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    if m.ir_version != 7:
        fail(f"{path}: IR version {m.ir_version}, expected 7")
    opsets = {o.domain: o.version for o in m.opset_import}
    if opsets != {"": 13}:
        fail(f"{path}: opsets {opsets}, expected only ai.onnx 13")
    g = m.graph
    if [i.name for i in g.input] != ["input"] or [o.name for o in g.output] != ["logits"]:
        fail(f"{path}: inputs {[i.name for i in g.input]}, outputs {[o.name for o in g.output]}")
    ops = Counter(n.op_type for n in g.node)
    init = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def arr(name):
        return numpy_helper.to_array(init[name])

    if kind == "int8":
        if ops["Conv"] == 0 or ops["QuantizeLinear"] == 0:
            fail(f"{path}: no Conv or QuantizeLinear: {dict(ops)}")
        float_ops = set()  # a layer kept in float (quant.skip): float weight, float input, float output
        for n in g.node:
            if n.op_type not in ("Conv", "Gemm"):
                continue
            if n.input[1] in init:
                if init[n.input[1]].data_type != onnx.TensorProto.FLOAT:
                    fail(f"{n.name}: a weight that is neither float nor dequantized")
                float_ops.add(n.name)
                continue
            x_dq, w_dq, b_dq = (producer.get(i) for i in n.input)
            for what, dq in (("input", x_dq), ("weight", w_dq), ("bias", b_dq)):
                if dq is None or dq.op_type != "DequantizeLinear":
                    fail(f"{n.name}: its {what} is not a DequantizeLinear output")
            w, ws, wz = init[w_dq.input[0]], arr(w_dq.input[1]), arr(w_dq.input[2])
            axis = [a.i for a in w_dq.attribute if a.name == "axis"]
            if w.data_type != onnx.TensorProto.INT8 or axis != [0] or ws.shape != (w.dims[0],) or wz.any():
                fail(f"{n.name}: weight not int8 per output channel (axis 0, zero points 0)")
            b, bs = init[b_dq.input[0]], arr(b_dq.input[1])
            xs = arr(x_dq.input[1])
            if b.data_type != onnx.TensorProto.INT32 or not np.array_equal(bs, (xs * ws).astype(np.float32)):
                fail(f"{n.name}: bias not int32 at input_scale x weight_scale")
            if arr(x_dq.input[2]).dtype != np.uint8:
                fail(f"{n.name}: input activation not uint8")
        for n in g.node:
            if n.op_type not in ("Conv", "Gemm", "Add", "MaxPool", "GlobalAveragePool") or n.name in float_ops:
                continue
            out = n.output[0]
            nxt = consumers.get(out, [])
            if len(nxt) == 1 and nxt[0].op_type in ("Relu", "Clip"):
                act = nxt[0]
                if act.op_type == "Clip" and (float(arr(act.input[1])) != 0.0 or float(arr(act.input[2])) != 6.0):
                    fail(f"{act.name}: Clip is not (0, 6)")
                nxt = consumers.get(act.output[0], [])
            if len(nxt) != 1 or nxt[0].op_type != "QuantizeLinear" or arr(nxt[0].input[2]).dtype != np.uint8:
                fail(f"{n.name} ({n.op_type}): its result is not requantized to uint8 (QuantizeLinear)")
    elif ops["QuantizeLinear"] or ops["DequantizeLinear"]:
        fail(f"{path}: a float export with Q/DQ nodes")
    summary = f"{path}: ok, {len(g.node)} nodes ({', '.join(f'{k} {v}' for k, v in sorted(ops.items()))})"
    if len(sys.argv) > 3:
        o = onnx.load(sys.argv[3])
        fused = Counter(n.op_type for n in o.graph.node)
        if fused["QLinearConv"] != ops["Conv"] or fused["Conv"] or fused["Relu"] or fused["Clip"]:
            fail(f"{sys.argv[3]}: ONNX Runtime did not fuse every Conv (and its Relu / Clip): {dict(fused)}")
        summary += f"; ONNX Runtime fused: {', '.join(f'{k} {v}' for k, v in sorted(fused.items()))}"
    print(summary)


if __name__ == "__main__":
    main()
