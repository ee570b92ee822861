"""Fold the BatchNormalization nodes tf2onnx leaves behind into their convolutions. Heavy tier.

tf2onnx folds most Conv+BN pairs of InceptionV3, but where the graph's spatial size is 1x1
(``mixed9``/``mixed10`` at a 75x75 input) it emits ``Conv -> Reshape -> BatchNormalization``
and keeps the BN. Static int8 quantisation then puts one per-tensor activation scale on the
*raw* convolution output, whose channels differ in scale by orders of magnitude until the BN
normalises them: the small channels round to zero. On a trained FER model that took the int8
ONNX from 60.6 % to 27 % (the parity gate caught it). Folding the BN into the convolution's
weights and bias (per output channel) removes the problem and the BN node.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

_PASSTHROUGH = ("Reshape", "Identity")


def fold_batchnorms(proto) -> int:
    """Fold ``Conv [-> Reshape] -> BatchNormalization`` in place; returns how many were folded.

    Only folds when the convolution (and the Reshape) feed nothing but the BN, the weights are
    initializers, and the BN normalises axis 1 (the convolution's output channels, NCHW).
    """
    g = proto.graph
    init = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    drop = []
    for bn in [n for n in g.node if n.op_type == "BatchNormalization"]:
        found = _foldable(bn, init, producer, consumers)
        if found is None or not _fold_into_conv(g, init, bn, found[0]):
            continue
        _rewire(g, consumers, bn, found[1][0].output[0] if found[1] else found[0].output[0])
        drop.append(bn)
    for bn in drop:
        g.node.remove(bn)
    _drop_unused_initializers(g)
    if drop:
        log.info("ONNX: folded %d BatchNormalization node(s) into their convolutions", len(drop))
    return len(drop)


def _foldable(bn, init: dict, producer: dict, consumers: dict):
    """(conv, pass-through chain) feeding only ``bn``, or None when it cannot be folded."""
    if len(bn.output) != 1 or any(i not in init for i in bn.input[1:5]):
        return None
    chain, node = [], producer.get(bn.input[0])
    while node is not None and node.op_type in _PASSTHROUGH:
        chain.append(node)
        node = producer.get(node.input[0])
    conv = node
    if conv is None or conv.op_type != "Conv" or conv.input[1] not in init:
        return None
    outs = [conv.output[0]] + [c.output[0] for c in chain]
    if any(len(consumers.get(o, [])) != 1 for o in outs):
        return None
    return conv, chain


def _fold_into_conv(g, init: dict, bn, conv) -> bool:
    """Give ``conv`` new weights and bias that include the BN's affine map; False when the
    shapes do not line up (nothing changed then)."""
    from onnx import numpy_helper

    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
    scale, beta, mean, var = (numpy_helper.to_array(init[i]).astype(np.float64)
                              for i in bn.input[1:5])
    w = numpy_helper.to_array(init[conv.input[1]]).astype(np.float64)
    if w.shape[0] != scale.shape[0]:
        return False
    s = scale / np.sqrt(var + eps)
    b = (numpy_helper.to_array(init[conv.input[2]]).astype(np.float64)
         if len(conv.input) > 2 and conv.input[2] else np.zeros_like(s))
    w_name, b_name = conv.name + "/folded_W", conv.name + "/folded_B"
    g.initializer.append(numpy_helper.from_array(
        (w * s.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32), w_name))
    g.initializer.append(numpy_helper.from_array(((b - mean) * s + beta).astype(np.float32),
                                                 b_name))
    del conv.input[1:]
    conv.input.extend([w_name, b_name])
    return True


def _rewire(g, consumers: dict, bn, last: str) -> None:
    """The BN's consumers (and graph outputs) read ``last``, the (reshaped) conv output."""
    for c in consumers.get(bn.output[0], []):
        for k, i in enumerate(c.input):
            if i == bn.output[0]:
                c.input[k] = last
    for o in g.output:
        if o.name == bn.output[0]:
            o.name = last


def _drop_unused_initializers(g) -> None:
    used = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.name not in used]:
        g.initializer.remove(t)
