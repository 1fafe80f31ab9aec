// Softmax over rows: Y[r, :] = e^(X[r, :] − m) / Σ e^(X[r, :] − m), m the row's maximum.
// One workgroup of 64 per row (the attention scores of one query where the fused
// flash_attn.wgsl does not apply: CLIP's causal attention, the VAE's 512-wide head).
// det_exp (shaders/det_exp.wgsl, appended by the host) instead of
// WGSL's exp, so the bits are the same on every driver; −inf scores (a mask) give exactly 0.
//
// Sums run in a fixed order: invocation `lid` adds elements lid, lid + 64, … in turn, then the
// 64 partial sums meet in a tree (32, 16, … 1). kernels::reference::softmax_rows does the same,
// operation for operation, so the two are equal to the bit.

struct Params {
    rows: u32,
    len: u32,
    // 1.0 and +inf from the host (det_exp's traps).
    one: f32,
    inf: f32,
}

@group(0) @binding(0) var<storage, read_write> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    // Spare workgroups of a 2-D grid read the last row and write nothing; no early return, as
    // the barriers must stay in uniform control flow.
    let r = wid.x + wid.y * nwg.x;
    let x0 = min(r, P.rows - 1u) * P.len;
    let n = select(0u, P.len, r < P.rows);

    var m = -P.inf;
    for (var i = lid; i < P.len; i += 64u) {
        m = max(m, X[x0 + i]);
    }
    red[lid] = m;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (lid < stride) { red[lid] = max(red[lid], red[lid + stride]); }
        workgroupBarrier();
    }
    m = red[0];
    // A row needs a finite maximum: one of −inf only (every key masked) gives NaN, as the
    // textbook formula does. Our masks (causal) always leave the diagonal.
    workgroupBarrier();

    // Each invocation writes and re-reads only its own elements, so no barrier is needed
    // between the exp pass and the division.
    var s = 0.0;
    for (var i = lid; i < P.len; i += 64u) {
        let e = det_exp(X[x0 + i] - m);
        s += e;
        if (i < n) { Y[x0 + i] = e; }
    }
    red[lid] = s;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (lid < stride) { red[lid] += red[lid + stride]; }
        workgroupBarrier();
    }
    s = red[0];
    for (var i = lid; i < n; i += 64u) {
        Y[x0 + i] = Y[x0 + i] / s;
    }
}
