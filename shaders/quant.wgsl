// Quant block decoders, shared by every kernel that reads GGUF weights (prepended to them).
//
// The including kernel declares `W: array<u32>` holding one weight's blocks, rows back to back.
// Blocks are GGUF blocks repacked once at upload so that every field is word-aligned (see
// `kernels::matmul::repack`): Q4_0, Q5_0 and Q8_0 get 2 pad bytes after their leading f16,
// Q6_K gets 2 pad bytes at the end; the other types are already multiples of 4 bytes.
// `dequant32(base, c, v)` writes the 32 values of chunk `c` of the row starting at word `base`
// (elements 32c .. 32c+31) into `v`: a whole block for the 32-element types, a sub-block of the
// 256-element K-quants. The arithmetic is ggml's dequantize_row_* exactly; loops have constant
// bounds so the compiler can keep `v` in registers.

// Byte `i` (0-based) of the block starting at word `wb`.
fn bb(wb: u32, i: u32) -> u32 {
    return (W[wb + (i >> 2u)] >> ((i & 3u) * 8u)) & 0xffu;
}

fn lo16f(w: u32) -> f32 { return unpack2x16float(w).x; }
fn hi16f(w: u32) -> f32 { return unpack2x16float(w).y; }
fn sext8(b: u32) -> f32 { return f32((i32(b) << 24u) >> 24u); }

fn dq_f32(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let w0 = base + c * 32u;
    for (var i = 0u; i < 32u; i++) { (*v)[i] = bitcast<f32>(W[w0 + i]); }
}

fn dq_f16(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let w0 = base + c * 16u;
    for (var j = 0u; j < 16u; j++) {
        let p = unpack2x16float(W[w0 + j]);
        (*v)[2u * j] = p.x;
        (*v)[2u * j + 1u] = p.y;
    }
}

fn dq_bf16(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let w0 = base + c * 16u;
    for (var j = 0u; j < 16u; j++) {
        let w = W[w0 + j];
        (*v)[2u * j] = bitcast<f32>(w << 16u);
        (*v)[2u * j + 1u] = bitcast<f32>(w & 0xffff0000u);
    }
}

// Q4_0 repacked: [d f16 | pad][qs 16 bytes] = 5 words. Low nibbles are elements 0-15.
fn dq_q4_0(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let wb = base + c * 5u;
    let d = lo16f(W[wb]);
    for (var j4 = 0u; j4 < 4u; j4++) {
        let q = W[wb + 1u + j4];
        for (var b = 0u; b < 4u; b++) {
            let x = (q >> (8u * b)) & 0xffu;
            (*v)[4u * j4 + b] = f32(i32(x & 0xfu) - 8) * d;
            (*v)[4u * j4 + b + 16u] = f32(i32(x >> 4u) - 8) * d;
        }
    }
}

// Q4_1: [d f16 | m f16][qs 16 bytes] = 5 words.
fn dq_q4_1(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let wb = base + c * 5u;
    let d = lo16f(W[wb]);
    let m = hi16f(W[wb]);
    for (var j4 = 0u; j4 < 4u; j4++) {
        let q = W[wb + 1u + j4];
        for (var b = 0u; b < 4u; b++) {
            let x = (q >> (8u * b)) & 0xffu;
            (*v)[4u * j4 + b] = f32(x & 0xfu) * d + m;
            (*v)[4u * j4 + b + 16u] = f32(x >> 4u) * d + m;
        }
    }
}

// Q5_0 repacked: [d f16 | pad][qh u32][qs 16 bytes] = 6 words. Bit j of qh is the fifth bit of
// element j, bit j+16 that of element j+16.
fn dq_q5_0(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let wb = base + c * 6u;
    let d = lo16f(W[wb]);
    let qh = W[wb + 1u];
    for (var j4 = 0u; j4 < 4u; j4++) {
        let q = W[wb + 2u + j4];
        for (var b = 0u; b < 4u; b++) {
            let j = 4u * j4 + b;
            let x = (q >> (8u * b)) & 0xffu;
            let h0 = ((qh >> j) << 4u) & 0x10u;
            let h1 = (qh >> (j + 12u)) & 0x10u;
            (*v)[j] = f32(i32((x & 0xfu) | h0) - 16) * d;
            (*v)[j + 16u] = f32(i32((x >> 4u) | h1) - 16) * d;
        }
    }
}

// Q5_1: [d f16 | m f16][qh u32][qs 16 bytes] = 6 words.
fn dq_q5_1(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let wb = base + c * 6u;
    let d = lo16f(W[wb]);
    let m = hi16f(W[wb]);
    let qh = W[wb + 1u];
    for (var j4 = 0u; j4 < 4u; j4++) {
        let q = W[wb + 2u + j4];
        for (var b = 0u; b < 4u; b++) {
            let j = 4u * j4 + b;
            let x = (q >> (8u * b)) & 0xffu;
            let h0 = ((qh >> j) << 4u) & 0x10u;
            let h1 = (qh >> (j + 12u)) & 0x10u;
            (*v)[j] = f32((x & 0xfu) | h0) * d + m;
            (*v)[j + 16u] = f32((x >> 4u) | h1) * d + m;
        }
    }
}

// Q8_0 repacked: [d f16 | pad][qs 32 x i8] = 9 words.
fn dq_q8_0(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let wb = base + c * 9u;
    let d = lo16f(W[wb]);
    for (var j4 = 0u; j4 < 8u; j4++) {
        let q = W[wb + 1u + j4];
        for (var b = 0u; b < 4u; b++) {
            (*v)[4u * j4 + b] = sext8((q >> (8u * b)) & 0xffu) * d;
        }
    }
}

// K-quants: 12 scale bytes pack 8 six-bit scales and 8 six-bit mins (ggml get_scale_min_k4).
fn k4_scale(wb: u32, j: u32) -> vec2<f32> {
    // scales start at byte 4 of the block
    if (j < 4u) {
        return vec2<f32>(f32(bb(wb, 4u + j) & 63u), f32(bb(wb, 8u + j) & 63u));
    }
    let sc = (bb(wb, 8u + j) & 0xfu) | ((bb(wb, j) >> 6u) << 4u);
    let mn = (bb(wb, 8u + j) >> 4u) | ((bb(wb, 4u + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(mn));
}

// Q4_K: [d f16 | dmin f16][scales 12][qs 128] = 36 words. Sub-blocks 2p and 2p+1 share 32
// quant bytes: low nibbles, then high nibbles.
fn dq_q4_k(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let wb = base + (c >> 3u) * 36u;
    let s = c & 7u;
    let d = lo16f(W[wb]);
    let dmin = hi16f(W[wb]);
    let sm = k4_scale(wb, s);
    let d1 = d * sm.x;
    let m1 = dmin * sm.y;
    let q0 = wb + 4u + (s >> 1u) * 8u;
    let shift = (s & 1u) * 4u;
    for (var j4 = 0u; j4 < 8u; j4++) {
        let q = W[q0 + j4] >> shift;
        for (var b = 0u; b < 4u; b++) {
            (*v)[4u * j4 + b] = d1 * f32((q >> (8u * b)) & 0xfu) - m1;
        }
    }
}

// Q5_K: [d | dmin][scales 12][qh 32][qs 128] = 44 words. The fifth bit of element l of
// sub-block s is bit s of qh[l].
fn dq_q5_k(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let wb = base + (c >> 3u) * 44u;
    let s = c & 7u;
    let d = lo16f(W[wb]);
    let dmin = hi16f(W[wb]);
    let sm = k4_scale(wb, s);
    let d1 = d * sm.x;
    let m1 = dmin * sm.y;
    let q0 = wb + 12u + (s >> 1u) * 8u;
    let shift = (s & 1u) * 4u;
    for (var j4 = 0u; j4 < 8u; j4++) {
        let q = W[q0 + j4] >> shift;
        let h = W[wb + 4u + j4] >> s;
        for (var b = 0u; b < 4u; b++) {
            let hi = ((h >> (8u * b)) & 1u) << 4u;
            (*v)[4u * j4 + b] = d1 * f32(((q >> (8u * b)) & 0xfu) + hi) - m1;
        }
    }
}

// Q6_K repacked: [ql 128][qh 64][scales 16 x i8][d f16 | pad] = 53 words.
fn dq_q6_k(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let wb = base + (c >> 3u) * 53u;
    let s = c & 7u;
    let h = s >> 2u;         // which 128-element half
    let g = s & 3u;          // which 32-element quarter of that half
    let d = lo16f(W[wb + 52u]);
    let ql = wb + h * 16u + (g & 1u) * 8u;
    let qh = wb + 32u + h * 8u;
    let nshift = (g >> 1u) * 4u;
    let sc0 = d * sext8(bb(wb, 192u + h * 8u + 2u * g));
    let sc1 = d * sext8(bb(wb, 192u + h * 8u + 2u * g + 1u));
    for (var j4 = 0u; j4 < 8u; j4++) {
        let lo = W[ql + j4] >> nshift;
        let hi = W[qh + j4] >> (2u * g);
        var sc = sc0;
        if (j4 >= 4u) { sc = sc1; }
        for (var b = 0u; b < 4u; b++) {
            let q = i32(((lo >> (8u * b)) & 0xfu) | (((hi >> (8u * b)) & 3u) << 4u)) - 32;
            (*v)[4u * j4 + b] = sc * f32(q);
        }
    }
}

fn dequant32(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    dq_{{ qtype }}(base, c, v);
}
