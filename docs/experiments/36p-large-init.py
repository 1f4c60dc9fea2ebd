#!/usr/bin/env python3
# usage: 36p-large-init.py SEED OUT.json  (then: adder train --arch OUT.json ...)
# A 36p architecture whose init lists are drawn like the tbukic sweep's "sinit_v1" scheme (scales near trained ones).
import json, os, sys
import numpy as np
seed, out = int(sys.argv[1]), sys.argv[2]
r = np.random.default_rng(seed)
a = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'architectures', '36p.json')))
P = a['parameters']
def put(k, v): P[k]['init'] = [float(x) for x in np.asarray(v, dtype=np.float32).ravel()]
put('attn.W_q', r.laplace(0, 3.0, 12))
put('mlp.W_up', r.normal(0, 3.0, 6))
put('mlp.W_gate', r.normal(0, 0.5, 6))
put('norm.ln1', r.uniform(-10, 15, 3))
put('attn.q_norm', r.uniform(-10, 15, 4))
put('embedding.arc', [2.5, -1.2, r.uniform(0.04, 0.12)])
put('attn.key_angle', [r.uniform(-4, 2)])
put('mlp.down_angle', [r.uniform(-4, 2)])
a['name'] = '36p-sinit-%d' % seed
json.dump(a, open(out, 'w'), indent=1)
