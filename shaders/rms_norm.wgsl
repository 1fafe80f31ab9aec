// RMSNorm: Y[r, :] = X[row0 + r, :] / sqrt(mean(X[row0 + r, :]^2) + eps) * w.
// One workgroup of 64 per row. `row0` lets the caller normalise only the last position
// before the LM head. `w_mod` lets several rows share one weight of length `w_mod` (per-head
// q/k norm in qwen3: rows are heads, w has head_dim entries).

struct Params {
    dim: u32,
    rows: u32,
    row0: u32,
    w_mod: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Wt: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    // Dispatched with exactly `rows` workgroups (2-D when > 65535), so no bounds return here:
    // an early return would put the barriers below in non-uniform control flow.
    let r = wid.x + wid.y * nwg.x;
    let x0 = (P.row0 + min(r, P.rows - 1u)) * P.dim;  // spare workgroups re-read the last row
    var s = 0.0;
    for (var i = lid; i < P.dim; i += 64u) {
        let v = X[x0 + i];
        s += v * v;
    }
    red[lid] = s;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (lid < stride) { red[lid] += red[lid + stride]; }
        workgroupBarrier();
    }
    let scale = 1.0 / sqrt(red[0] / f32(P.dim) + P.eps);
    let y0 = r * P.dim;
    let n = select(0u, P.dim, r < P.rows);
    for (var i = lid; i < n; i += 64u) {
        Y[y0 + i] = X[x0 + i] * scale * Wt[i % P.w_mod];
    }
}
