// Batched matmul of two activations (the diffusion models' attention: scores = q·kᵀ, then
// out = p·v):
//   C[b, i, j] = alpha · Σ_k A[b, i, k] · B(b, k, j)
// A [batch, m, k] row-major; B is [batch, n, k] when `b_trans` is 1 (C = A·Bᵀ: q·kᵀ without a
// transposed copy of k) and [batch, k, n] when it is 0 (p·v).
// One invocation per (b, i, 4 consecutive j): each A[b, i, k] is loaded once for 4 outputs.
// The sum runs over k in order, one product added at a time, then is scaled once: the same
// operations on every driver (neither lavapipe nor SwiftShader fuses a·b + c), so a picture is
// bit-identical natively and in the browser. No workgroup memory or barriers (on lavapipe they
// split the shader and cost more than they save).
// Trap: burn's own matmul (cubecl's tiled kernels) ran these shapes 10-100× slower on lavapipe.

struct Params {
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    b_trans: u32,
    alpha: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> A: array<f32>;
@group(0) @binding(1) var<storage, read_write> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 64u;
    let n4 = (P.n + 3u) / 4u;
    if (idx >= P.batch * P.m * n4) { return; }
    let j0 = (idx % n4) * 4u;
    let row = idx / n4;           // b · m + i
    let b = row / P.m;
    let a0 = row * P.k;
    // Columns past the end re-read the last one; their sums are never written.
    let j1 = min(j0 + 1u, P.n - 1u);
    let j2 = min(j0 + 2u, P.n - 1u);
    let j3 = min(j0 + 3u, P.n - 1u);
    var c0 = 0.0;
    var c1 = 0.0;
    var c2 = 0.0;
    var c3 = 0.0;
    if (P.b_trans == 1u) {
        let bb = b * P.n * P.k;
        let r0 = bb + j0 * P.k;
        let r1 = bb + j1 * P.k;
        let r2 = bb + j2 * P.k;
        let r3 = bb + j3 * P.k;
        for (var kk = 0u; kk < P.k; kk++) {
            let a = A[a0 + kk];
            c0 += a * B[r0 + kk];
            c1 += a * B[r1 + kk];
            c2 += a * B[r2 + kk];
            c3 += a * B[r3 + kk];
        }
    } else {
        let bb = b * P.k * P.n;
        for (var kk = 0u; kk < P.k; kk++) {
            let a = A[a0 + kk];
            let r = bb + kk * P.n;
            c0 += a * B[r + j0];
            c1 += a * B[r + j1];
            c2 += a * B[r + j2];
            c3 += a * B[r + j3];
        }
    }
    let o = row * P.n + j0;
    C[o] = c0 * P.alpha;
    if (j0 + 1u < P.n) { C[o + 1u] = c1 * P.alpha; }
    if (j0 + 2u < P.n) { C[o + 2u] = c2 * P.alpha; }
    if (j0 + 3u < P.n) { C[o + 3u] = c3 * P.alpha; }
}
