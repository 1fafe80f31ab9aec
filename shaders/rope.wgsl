// Split a fused QKV projection into heads, rotate Q and K (RoPE), and store:
//   Q -> QO[h, t, :] (the attention kernel's layout), K -> KC[kv, pos0 + t, :], V -> VC[kv, pos0 + t, :]
// so the KV cache is written in place with no extra copy. One invocation per (token, head).
//
// Two rotation layouts (the trap that gives plausible but wrong logits):
//   mode 0: adjacent pairs (x[2i], x[2i+1])  -- GGUF `llama` (the converter permuted Q and K)
//   mode 2: NEOX halves (x[i], x[i + n_rot/2]) -- qwen2, qwen3, gemma
// Angles come from CS[pos, i] = (cos, sin) of pos * theta_i / freq_factor_i, computed once on the
// CPU in f64 at load time (so large positions do not depend on the GPU's sin/cos accuracy).
// Dimensions >= n_rot pass through unrotated. Optional per-head RMSNorm of q and k (qwen3)
// runs before the rotation, with weights NW[0..hd] (q) and NW[hd..2hd] (k).

struct Params {
    t: u32,
    n_head: u32,
    n_kv: u32,
    hd: u32,
    n_rot: u32,
    mode: u32,
    pos0: u32,
    ctx: u32,
    qk_norm: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> QKV: array<f32>;
@group(0) @binding(1) var<storage, read_write> CS: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> NW: array<f32>;
@group(0) @binding(3) var<storage, read_write> QO: array<f32>;
@group(0) @binding(4) var<storage, read_write> KC: array<f32>;
@group(0) @binding(5) var<storage, read_write> VC: array<f32>;
@group(0) @binding(6) var<uniform> P: Params;

fn store(kind: u32, o: u32, v: f32) {
    if (kind == 0u) { QO[o] = v; } else if (kind == 1u) { KC[o] = v; } else { VC[o] = v; }
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let heads = P.n_head + 2u * P.n_kv;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if (idx >= P.t * heads) { return; }
    let t = idx / heads;
    let h = idx % heads;
    let hd = P.hd;
    let src = (t * heads + h) * hd;
    let pos = P.pos0 + t;

    var kind = 0u;
    var o = 0u;
    if (h < P.n_head) {
        o = (h * P.t + t) * hd;
    } else if (h < P.n_head + P.n_kv) {
        kind = 1u;
        o = ((h - P.n_head) * P.ctx + pos) * hd;
    } else {
        kind = 2u;
        o = ((h - P.n_head - P.n_kv) * P.ctx + pos) * hd;
    }

    var scale = 1.0;
    var nw0 = 0u;
    let normed = P.qk_norm != 0u && kind < 2u;
    if (normed) {
        var ss = 0.0;
        for (var i = 0u; i < hd; i++) { let v = QKV[src + i]; ss += v * v; }
        scale = 1.0 / sqrt(ss / f32(hd) + P.eps);
        nw0 = kind * hd;
    }

    if (kind == 2u) {
        for (var i = 0u; i < hd; i++) { store(kind, o + i, QKV[src + i]); }
        return;
    }
    let half_rot = P.n_rot / 2u;
    for (var i = 0u; i < half_rot; i++) {
        var i0 = 2u * i;
        var i1 = 2u * i + 1u;
        if (P.mode == 2u) { i0 = i; i1 = i + half_rot; }
        var x0 = QKV[src + i0];
        var x1 = QKV[src + i1];
        if (normed) {
            x0 = x0 * scale * NW[nw0 + i0];
            x1 = x1 * scale * NW[nw0 + i1];
        }
        let cs = CS[pos * half_rot + i];
        store(kind, o + i0, x0 * cs.x - x1 * cs.y);
        store(kind, o + i1, x0 * cs.y + x1 * cs.x);
    }
    for (var i = P.n_rot; i < hd; i++) {
        var x = QKV[src + i];
        if (normed) { x = x * scale * NW[nw0 + i]; }
        store(kind, o + i, x);
    }
}
