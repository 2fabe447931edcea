"""An independent float64 numpy forward pass of all-MiniLM-L6-v2, to check the Rust one.

Reads sentences, one a line, from stdin and prints each embedding (mean pooling over the
tokens, then L2 normalisation, as sentence-transformers does) as a JSON list. Written from the
BERT architecture, sharing no code with candle. Needs numpy and tokenizers (pip install numpy
tokenizers, in a virtualenv). Usage:

    python apps/neural/scripts/reference_embed.py models/all-minilm-l6-v2 < sentences.txt

The golden values in tests/analyzer.rs (`embedding_matches_the_reference`) came from it.
"""
import json, struct, sys
import numpy as np
from math import erf
from tokenizers import Tokenizer

d = sys.argv[1]
f = open(d + "/model.safetensors", "rb"); n = struct.unpack("<Q", f.read(8))[0]
hdr = json.loads(f.read(n)); base = 8 + n; raw = open(d + "/model.safetensors", "rb").read()
W = {}
for k, v in hdr.items():
    if k == "__metadata__": continue
    s, e = v["data_offsets"]; dt = {"F32": np.float32, "I64": np.int64}[v["dtype"]]
    W[k] = np.frombuffer(raw[base + s: base + e], dtype=dt).reshape(v["shape"]).astype(np.float64 if dt == np.float32 else dt)
tok = Tokenizer.from_file(d + "/tokenizer.json"); tok.no_padding(); tok.enable_truncation(256)
verf = np.vectorize(erf)
def ln(x, p): m = x.mean(-1, keepdims=True); v = ((x - m) ** 2).mean(-1, keepdims=True); return (x - m) / np.sqrt(v + 1e-12) * W[p + ".weight"] + W[p + ".bias"]
def lin(x, p): return x @ W[p + ".weight"].T + W[p + ".bias"]
def embed(text):
    enc = tok.encode(text); ids = np.array(enc.ids); L = len(ids)
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:L] + W["embeddings.token_type_embeddings.weight"][np.array(enc.type_ids)]
    x = ln(x, "embeddings.LayerNorm")
    for i in range(6):
        p = f"encoder.layer.{i}."
        q = lin(x, p + "attention.self.query").reshape(L, 12, 32).transpose(1, 0, 2)
        k = lin(x, p + "attention.self.key").reshape(L, 12, 32).transpose(1, 0, 2)
        v = lin(x, p + "attention.self.value").reshape(L, 12, 32).transpose(1, 0, 2)
        a = q @ k.transpose(0, 2, 1) / np.sqrt(32); a = np.exp(a - a.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)
        c = (a @ v).transpose(1, 0, 2).reshape(L, 384)
        x = ln(lin(c, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = lin(x, p + "intermediate.dense"); h = 0.5 * h * (1 + verf(h / np.sqrt(2)))
        x = ln(lin(h, p + "output.dense") + x, p + "output.LayerNorm")
    m = x.mean(0); return m / np.linalg.norm(m)
for line in sys.stdin:
    e = embed(line.rstrip("\n")); print(json.dumps([float(v) for v in e]))
