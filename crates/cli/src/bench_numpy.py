# The numpy side of `mobileclip bench runtime`: reads the cases (JSON) on stdin, runs each
# with numpy (OpenBLAS) the way a BLAS-based CPU framework would, prints timings as JSON.
# Inputs come from the same SplitMix64 generator as the Rust side.
import json
import sys
import time

import numpy as np

MASK = (1 << 64) - 1


def det_data(n, seed):
    state = ((seed * 0x9E3779B97F4A7C15) & MASK) ^ 0xD1B54A32D192ED03
    out = np.empty(n, dtype=np.float32)
    # vectorised SplitMix64 over the counter
    idx = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(state) + idx * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    out[:] = (z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24) * np.float32(2) - np.float32(1)
    return out


def arr(shape, seed):
    return det_data(int(np.prod(shape)), seed).reshape(shape)


def make(case):
    op = case["op"]
    if op == "matmul":
        a, b = arr((case["m"], case["k"]), 1), arr((case["k"], case["n"]), 2)
        return lambda: a @ b
    if op == "conv2d":
        n, h, w, cin, cout, k = (case[x] for x in ("n", "h", "w", "cin", "cout", "k"))
        x = arr((n, h, w, cin), 3)
        wt = arr((cout, k, k, cin), 4)
        wmat = np.ascontiguousarray(wt.reshape(cout, k * k * cin).T)
        p = k // 2

        def conv():
            xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
            win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))  # n,h,w,c,k,k
            cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * h * w, k * k * cin)  # im2col
            return (cols @ wmat).reshape(n, h, w, cout)

        return conv
    if op == "depthwise":
        n, h, w, c, k = (case[x] for x in ("n", "h", "w", "c", "k"))
        x = arr((n, h, w, c), 5)
        wt = arr((k, k, c), 6)
        p = k // 2

        def dw():
            xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
            acc = np.zeros_like(x)
            for dy in range(k):
                for dx in range(k):
                    acc += xp[:, dy:dy + h, dx:dx + w, :] * wt[dy, dx]
            return acc

        return dw
    if op == "attention":
        shape = (case["b"], case["heads"], case["l"], case["d"])
        q, k, v = arr(shape, 7), arr(shape, 8), arr(shape, 9)
        scale = np.float32(1.0 / np.sqrt(case["d"]))

        def attn():
            s = (q * scale) @ k.transpose(0, 1, 3, 2)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            return s @ v

        return attn
    if op == "linear":
        x, w, b = arr((case["m"], case["k"]), 10), arr((case["k"], case["n"]), 11), arr((case["n"],), 12)
        return lambda: x @ w + b
    raise ValueError(f"unknown op {op}")


def main():
    req = json.load(sys.stdin)
    out = {"numpy": np.__version__, "blas": None, "results": []}
    try:
        cfg = np.show_config(mode="dicts")
        out["blas"] = cfg.get("Build Dependencies", {}).get("blas", {}).get("name")
    except Exception:
        pass
    for case in req["cases"]:
        f = make(case)
        f()
        runs = []
        for _ in range(req["runs"]):
            t = time.perf_counter()
            f()
            runs.append((time.perf_counter() - t) * 1e3)
        out["results"].append({"case": case, "runs_ms": runs})
    json.dump(out, sys.stdout)


main()
