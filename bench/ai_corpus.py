#!/usr/bin/python3
"""Generate one version of a series of AI artifacts, as a training job would leave them on disk.

    python3 bench/ai_corpus.py SCENARIO OUTDIR VERSION [--seed S] [--scale F]
    python3 bench/ai_corpus.py --list          (prints "SCENARIO VERSIONS" lines)

Writes version VERSION (1-based) of SCENARIO into OUTDIR: afterwards OUTDIR holds exactly the files
the job would have at that version. The output depends only on (SCENARIO, VERSION, --seed,
--scale): safetensors files are recomputed from the seed (the initial weights, then the updates
of versions 2..VERSION), files that a job adds and never touches again (dataset shards, PyTorch
checkpoints) are written only when missing and left untouched otherwise (a PyTorch run resumes
from the newest checkpoint already in OUTDIR, as a restarted training job would; from scratch the
result is the same bytes). Files of later versions are removed. --scale shrinks the sizes
(roughly proportional to F) for a quick run. Prints nothing but errors.

Scenarios (sizes at --scale 1.0):
  sparse-embedding  model.safetensors, overwritten: 1,048,576 x 64 fp32 embedding table (256 MiB)
                    + a ~4 MiB fp32 dense tower; each version updates 2% of the rows and every
                    weight of the tower (+= 0.01 * 0.02 * randn). 4 versions.
  bf16-training     model.safetensors, overwritten: ~64M bf16 parameters (12 blocks x {qkv, proj,
                    fc1, fc2}, embeddings, layernorms), init N(0, 0.02); each version every weight
                    is multiplied by 1 + 0.01 * randn and rounded to bf16 (nearest even). 3 versions.
  frozen-finetune   model.safetensors, overwritten: ~200 MiB fp32, 24 blocks + a head; each version
                    only the last 2 blocks and the head change (+= 0.0002 * randn on every weight in
                    them), the rest is bit-identical. 4 versions.
  dataset-shards    shards/shard-NNNNN.jsonl, ~8 MiB each, {"id": .., "text": ".."} records over a
                    Zipf-distributed vocabulary of 4000 words; 8 shards, then +4 per version. 4 versions.
  pytorch-real      ckpt/step-NNNNNN.pt: torch.save({'model', 'optimizer', 'step'}) of an MLP
                    784-1024-1024-1024-10 trained with Adam (batch 8) on synthetic data (CPU, one
                    thread), a new file every 100 steps (~35 MB), older ones kept. 4 versions.

Safetensors files are written by hand in the layout of the safetensors library (8-byte LE header
length, JSON header padded with spaces to a multiple of 8, tensors sorted by name, raw LE bytes).
"""
import json
import math
import os
import struct
import sys

import numpy as np

SCENARIOS = {  # name -> (id used in seeds, default number of versions)
    "sparse-embedding": (1, 4),
    "bf16-training": (2, 3),
    "frozen-finetune": (3, 4),
    "dataset-shards": (4, 4),
    "pytorch-real": (5, 4),
}


def die(msg, code=2):
    sys.stderr.write("ai_corpus.py: %s\n" % msg)
    sys.exit(code)


def rng(seed, *keys):
    return np.random.default_rng([seed, *keys])


def dim(base, scale, minimum=8):
    """A size that scales like sqrt(scale) (so a matrix scales like scale), rounded to a multiple of 8."""
    return max(minimum, int(round(base * math.sqrt(scale) / 8.0)) * 8)


# ----------------------------------------------------------------------------------------------
# safetensors

DTYPES = {"F32": (np.dtype("<f4"), 4), "BF16": (np.dtype("<u2"), 2)}
DTYPE_RANK = {"BF16": 1, "F32": 2}  # the library sorts by dtype (descending), then by name


def write_safetensors(path, specs, produce):
    """specs: [(name, dtype, shape)]; produce(name) -> numpy array of that dtype (bf16 as uint16)."""
    specs = sorted(specs, key=lambda s: (-DTYPE_RANK[s[1]], s[0]))
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dt, shape in specs:
        n = DTYPES[dt][1] * int(np.prod(shape, dtype=np.int64))
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:  # truncated and rewritten in place, like safetensors.save_file
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, dt, shape in specs:
            a = np.ascontiguousarray(produce(name), dtype=DTYPES[dt][0])
            if a.shape != tuple(shape):
                raise AssertionError("%s: shape %s, expected %s" % (name, a.shape, shape))
            f.write(memoryview(a).cast("B"))


def to_bf16(x):
    """fp32 -> bf16 bits (uint16), round to nearest, ties to even (no NaNs here)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    r = (u >> 16) & 1
    r += 0x7FFF
    r += u
    r >>= 16
    return r.astype(np.uint16)


def from_bf16(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


# ----------------------------------------------------------------------------------------------
# scenarios writing one safetensors file, recomputed from the seed

def sparse_embedding(out, version, seed, scale):
    sid = SCENARIOS["sparse-embedding"][0]
    rows, width = max(1024, int(round(1048576 * scale))), 64
    fin, hid = dim(512, scale), dim(1024, scale)
    specs = [("embedding.weight", "F32", (rows, width)),
             ("tower.0.weight", "F32", (hid, fin)), ("tower.0.bias", "F32", (hid,)),
             ("tower.1.weight", "F32", (fin, hid)), ("tower.1.bias", "F32", (fin,)),
             ("tower.2.weight", "F32", (1, fin)), ("tower.2.bias", "F32", (1,))]
    std, step = 0.02, 0.01 * 0.02

    def produce(name):
        idx = [s[0] for s in specs].index(name)
        shape = specs[idx][2]
        w = rng(seed, sid, 0, idx).standard_normal(shape, dtype=np.float32)
        w *= std
        for v in range(2, version + 1):
            r = rng(seed, sid, v, idx)
            if name == "embedding.weight":  # an optimizer step on the rows seen by this version's batches
                hit = np.sort(r.choice(rows, size=max(1, rows // 50), replace=False))
                d = r.standard_normal((hit.size, width), dtype=np.float32)
                d *= step
                w[hit] += d
            else:
                d = r.standard_normal(shape, dtype=np.float32)
                d *= step
                w += d
        return w

    write_safetensors(os.path.join(out, "model.safetensors"), specs, produce)


def bf16_training(out, version, seed, scale):
    sid = SCENARIOS["bf16-training"][0]
    d, vocab = dim(640, scale), dim(8192, scale)
    specs = [("tok_emb.weight", "BF16", (vocab, d))]
    for i in range(12):
        p = "blocks.%d." % i
        specs += [(p + "ln1.weight", "BF16", (d,)), (p + "ln1.bias", "BF16", (d,)),
                  (p + "attn.qkv.weight", "BF16", (3 * d, d)), (p + "attn.proj.weight", "BF16", (d, d)),
                  (p + "ln2.weight", "BF16", (d,)), (p + "ln2.bias", "BF16", (d,)),
                  (p + "mlp.fc1.weight", "BF16", (4 * d, d)), (p + "mlp.fc2.weight", "BF16", (d, 4 * d))]
    specs += [("ln_f.weight", "BF16", (d,)), ("ln_f.bias", "BF16", (d,))]
    names = [s[0] for s in specs]

    def produce(name):
        idx = names.index(name)
        shape = specs[idx][2]
        if name.endswith("ln1.weight") or name.endswith("ln2.weight") or name == "ln_f.weight":
            w = np.ones(shape, dtype=np.float32)
        elif name.endswith(".bias"):
            w = np.zeros(shape, dtype=np.float32)
        else:
            w = rng(seed, sid, 0, idx).standard_normal(shape, dtype=np.float32)
            w *= 0.02
        b = to_bf16(w)
        for v in range(2, version + 1):
            f = rng(seed, sid, v, idx).standard_normal(shape, dtype=np.float32)
            f *= 0.01
            f += 1.0
            f *= from_bf16(b)
            b = to_bf16(f)
        return b

    write_safetensors(os.path.join(out, "model.safetensors"), specs, produce)


def frozen_finetune(out, version, seed, scale):
    sid = SCENARIOS["frozen-finetune"][0]
    d, vocab, nblocks = dim(416, scale), dim(6144, scale), 24
    specs = []
    for i in range(nblocks):
        p = "blocks.%d." % i
        specs += [(p + "ln1.weight", "F32", (d,)), (p + "ln1.bias", "F32", (d,)),
                  (p + "attn.qkv.weight", "F32", (3 * d, d)), (p + "attn.qkv.bias", "F32", (3 * d,)),
                  (p + "attn.proj.weight", "F32", (d, d)), (p + "attn.proj.bias", "F32", (d,)),
                  (p + "ln2.weight", "F32", (d,)), (p + "ln2.bias", "F32", (d,)),
                  (p + "mlp.fc1.weight", "F32", (4 * d, d)), (p + "mlp.fc1.bias", "F32", (4 * d,)),
                  (p + "mlp.fc2.weight", "F32", (d, 4 * d)), (p + "mlp.fc2.bias", "F32", (d,))]
    specs += [("norm.weight", "F32", (d,)), ("norm.bias", "F32", (d,)),
              ("head.weight", "F32", (vocab, d)), ("head.bias", "F32", (vocab,))]
    names = [s[0] for s in specs]
    trained = tuple("blocks.%d." % i for i in (nblocks - 2, nblocks - 1)) + ("head.",)

    def produce(name):
        idx = names.index(name)
        shape = specs[idx][2]
        w = rng(seed, sid, 0, idx).standard_normal(shape, dtype=np.float32)  # "pretrained" weights
        if name.endswith("ln1.weight") or name.endswith("ln2.weight") or name == "norm.weight":
            w *= 0.05
            w += 1.0
        elif name.endswith(".bias"):
            w *= 0.01
        else:
            w *= 0.02
        if name.startswith(trained):
            for v in range(2, version + 1):
                dlt = rng(seed, sid, v, idx).standard_normal(shape, dtype=np.float32)
                dlt *= 0.0002
                w += dlt
        return w

    write_safetensors(os.path.join(out, "model.safetensors"), specs, produce)


# ----------------------------------------------------------------------------------------------
# dataset-shards: shard k depends only on (seed, scale, k); existing shards are left untouched

def dataset_shards(out, version, seed, scale):
    sid = SCENARIOS["dataset-shards"][0]
    target = max(4096, int(8 * 1048576 * scale))
    count = 8 + 4 * (version - 1)
    sdir = os.path.join(out, "shards")
    os.makedirs(sdir, exist_ok=True)
    names = ["shard-%05d.jsonl" % k for k in range(count)]
    for f in os.listdir(sdir):
        if f.startswith("shard-") and f.endswith(".jsonl") and f not in names:
            os.remove(os.path.join(sdir, f))
    missing = [k for k in range(count) if not os.path.exists(os.path.join(sdir, names[k]))]
    if not missing:
        return
    # the vocabulary: 4000 distinct pseudo-words, Zipf-distributed
    vr = rng(seed, sid, 0)
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    lp = 1.0 / np.arange(1, 27) ** 0.8
    lp /= lp.sum()
    vocab, seen = [], set()
    while len(vocab) < 4000:
        w = "".join(vr.choice(letters, size=int(vr.integers(2, 11)), p=lp))
        if w not in seen:
            seen.add(w)
            vocab.append(w)
    vocab = np.array(vocab, dtype=object)
    zp = 1.0 / (np.arange(1, 4001) + 2.7)
    zp /= zp.sum()
    for k in missing:
        r = rng(seed, sid, 1, k)
        lines, size, i = [], 0, 0
        while size < target:
            words = vocab[r.choice(4000, size=65536, p=zp)]
            lens = r.integers(20, 400, size=1024)
            pos = 0
            for n in lens:
                if pos + n > words.size or size >= target:
                    break
                line = json.dumps({"id": k * 1000000 + i, "text": " ".join(words[pos:pos + n])}) + "\n"
                pos += n
                i += 1
                lines.append(line)
                size += len(line)
        tmp = os.path.join(sdir, "." + names[k] + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(lines)
        os.replace(tmp, os.path.join(sdir, names[k]))


# ----------------------------------------------------------------------------------------------
# pytorch-real: a real (tiny) training run on the CPU; resumes from the newest checkpoint present

def pytorch_real(out, version, seed, scale):
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    # One thread: the results do not depend on the machine's cores, and with the reference BLAS of
    # Debian's torch a second thread buys little (~7 s per 100 steps at scale 1 either way).
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    sid = SCENARIOS["pytorch-real"][0]
    hidden, every, batch = dim(1024, scale, 32), 100, 8
    cdir = os.path.join(out, "ckpt")
    os.makedirs(cdir, exist_ok=True)
    name = lambda step: "step-%06d.pt" % step
    wanted = [name(every * v) for v in range(1, version + 1)]
    for f in os.listdir(cdir):
        if f.startswith("step-") and f.endswith(".pt") and f not in wanted:
            os.remove(os.path.join(cdir, f))

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed * 1000003 + sid)
    teacher = torch.randn(784, 10, generator=g)  # the synthetic task: labels from a fixed linear teacher

    step = 0
    for v in range(version - 1, 0, -1):  # resume from the newest checkpoint already written
        p = os.path.join(cdir, name(every * v))
        if os.path.exists(p):
            state = torch.load(p, map_location="cpu")
            if state.get("step") != every * v:
                die("%s: holds step %r, expected %d" % (p, state.get("step"), every * v), 1)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            # Keys as Adam writes them (interned), so that the next torch.save pickles the same bytes
            # as an uninterrupted run would (pickle memoizes by object identity).
            for prm, st in list(opt.state.items()):
                opt.state[prm] = {sys.intern(k): t for k, t in st.items()}
            step = state["step"]
            break
    loss_fn = torch.nn.CrossEntropyLoss()
    while step < every * version:
        gb = torch.Generator().manual_seed((seed * 1000003 + sid) * 100003 + step)
        x = torch.randn(batch, 784, generator=gb)
        y = (x @ teacher).argmax(dim=1)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        step += 1
        if step % every == 0:
            p = os.path.join(cdir, name(step))
            if not os.path.exists(p):
                # straight to its name, as a training job does (torch names the zip's root folder after it)
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}, p)


GENERATORS = {
    "sparse-embedding": sparse_embedding,
    "bf16-training": bf16_training,
    "frozen-finetune": frozen_finetune,
    "dataset-shards": dataset_shards,
    "pytorch-real": pytorch_real,
}


def main(argv):
    if argv in (["-h"], ["--help"]):
        sys.stdout.write(__doc__)
        return 0
    if argv == ["--list"]:
        for n, (_, versions) in SCENARIOS.items():
            sys.stdout.write("%s %d\n" % (n, versions))
        return 0
    pos, seed, scale = [], 1, 1.0
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--seed", "--scale"):
            if i + 1 >= len(argv):
                die("%s needs a value" % a)
            val = argv[i + 1]
            i += 2
            try:
                if a == "--seed":
                    seed = int(val)
                    if seed < 0:
                        raise ValueError
                else:
                    scale = float(val)
                    if not (scale > 0 and math.isfinite(scale)):
                        raise ValueError
            except ValueError:
                die("%s: bad value %r (seed: an integer >= 0, scale: a number > 0)" % (a, val))
        elif a.startswith("-") and a != "-":
            die("unknown option %s (usage: ai_corpus.py SCENARIO OUTDIR VERSION [--seed S] [--scale F])" % a)
        else:
            pos.append(a)
            i += 1
    if len(pos) != 3:
        die("usage: ai_corpus.py SCENARIO OUTDIR VERSION [--seed S] [--scale F]")
    scenario, out, ver = pos
    if scenario not in SCENARIOS:
        die("unknown scenario %r (one of %s)" % (scenario, ", ".join(SCENARIOS)))
    try:
        version = int(ver)
        if version < 1:
            raise ValueError
    except ValueError:
        die("VERSION must be an integer >= 1, not %r" % ver)
    try:
        os.makedirs(out, exist_ok=True)
        GENERATORS[scenario](out, version, seed, scale)
    except OSError as e:
        die(str(e), 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
