//! The CPU dequantization oracle (`aigc::quant`) must be bit-exact with the `gguf` PyPI package.
//! Fixtures: tests/fixtures/quant/, written by tests/fixtures/make_quant_fixtures.py.

use aigc::quant::{dequantize, dequantize_row_to_vec, ggml_type_name, quantize_q4_0, quantize_q8_0, GgmlType, QuantError};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/quant/");

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (run tests/fixtures/make_quant_fixtures.py)"))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

/// Bit-exact, except that any NaN matches any NaN (f16 NaN payloads are not preserved the same way).
fn assert_bits_eq(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
        assert!(same, "{name}[{i}] (block {}): got {g:e} ({:#010x}), want {w:e} ({:#010x})", i / 32, g.to_bits(), w.to_bits());
    }
}

fn check_deq(name: &str, ty: GgmlType) {
    let raw = fixture(&format!("deq_{name}.in.bin"));
    let want = f32s(&fixture(&format!("deq_{name}.out.bin")));
    assert!(!want.is_empty());
    assert_eq!(ty.row_bytes(want.len() as u64), Some(raw.len() as u64), "{name}: fixture sizes");
    let got = dequantize_row_to_vec(ty, &raw).unwrap();
    assert_bits_eq(name, &got, &want);
    let mut out = vec![f32::NAN; want.len()];
    dequantize(ty, &raw, &mut out).unwrap();
    assert_bits_eq(name, &out, &want);
}

#[test]
fn synthetic_blocks_bit_exact() {
    use GgmlType::*;
    for ty in [F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K] {
        check_deq(ty.name(), ty);
    }
}

#[test]
fn real_tensor_rows_bit_exact() {
    check_deq("real_Q4_1_blk.0.attn_q.weight", GgmlType::Q4_1);
    check_deq("real_Q4_1_blk.29.ffn_down.weight", GgmlType::Q4_1);
    check_deq("real_Q8_0_token_embd.weight", GgmlType::Q8_0);
}

fn check_quant(ty: GgmlType, f: fn(&[f32]) -> Vec<u8>) {
    for case in ["normal", "wide", "edge"] {
        let name = format!("q_{}_{case}", ty.name());
        let x = f32s(&fixture(&format!("{name}.in.bin")));
        let want = fixture(&format!("{name}.out.bin"));
        let got = f(&x);
        assert_eq!(got.len(), want.len(), "{name}: length");
        for (b, (g, w)) in got.chunks(ty.type_size()).zip(want.chunks(ty.type_size())).enumerate() {
            assert_eq!(g, w, "{name}: block {b}");
        }
        // Round trip: dequantizing our own output is well-formed.
        assert_eq!(dequantize_row_to_vec(ty, &got).unwrap().len(), x.len());
    }
}

#[test]
fn quantize_q8_0_bit_exact() {
    check_quant(GgmlType::Q8_0, quantize_q8_0);
}

#[test]
fn quantize_q4_0_bit_exact() {
    check_quant(GgmlType::Q4_0, quantize_q4_0);
}

#[test]
fn quantize_partial_block_is_zero_padded() {
    let x: Vec<f32> = (0..40).map(|i| i as f32 - 20.0).collect();
    let mut padded = x.clone();
    padded.resize(64, 0.0);
    assert_eq!(quantize_q8_0(&x), quantize_q8_0(&padded));
    assert_eq!(quantize_q4_0(&x), quantize_q4_0(&padded));
    assert!(quantize_q8_0(&[]).is_empty());
}

#[test]
fn type_table() {
    use GgmlType::*;
    let table = [
        (F32, 0, "F32", 1, 4), (F16, 1, "F16", 1, 2), (Q4_0, 2, "Q4_0", 32, 18), (Q4_1, 3, "Q4_1", 32, 20),
        (Q5_0, 6, "Q5_0", 32, 22), (Q5_1, 7, "Q5_1", 32, 24), (Q8_0, 8, "Q8_0", 32, 34),
        (Q4_K, 12, "Q4_K", 256, 144), (Q5_K, 13, "Q5_K", 256, 176), (Q6_K, 14, "Q6_K", 256, 210),
        (BF16, 30, "BF16", 1, 2),
    ];
    for (ty, id, name, bs, ts) in table {
        assert_eq!(GgmlType::from_id(id), Some(ty));
        assert_eq!((ty.id(), ty.name(), ty.block_size(), ty.type_size()), (id, name, bs, ts));
    }
    for id in [4, 5, 9, 10, 11, 15, 16, 23, 24, 28, 29, 31, 34, 35, 39, 40, 41, 42, 1000, u32::MAX] {
        assert_eq!(GgmlType::from_id(id), None, "id {id}");
    }
    assert_eq!(ggml_type_name(16), "IQ2_XXS");
    assert_eq!(ggml_type_name(39), "MXFP4");
    assert_eq!(ggml_type_name(26), "I32");
    assert_eq!(ggml_type_name(42), "unknown");
    assert_eq!(Q4_K.row_bytes(512), Some(288));
    assert_eq!(Q4_K.row_bytes(100), None);
    assert_eq!(F32.row_bytes(u64::MAX / 2), None);
    assert_eq!(Q8_0.row_bytes(u64::MAX / 32 * 32), None);
}

#[test]
fn length_errors() {
    let mut out = vec![0f32; 32];
    assert!(matches!(dequantize(GgmlType::Q4_0, &[0; 17], &mut out), Err(QuantError::LengthMismatch { .. })));
    assert!(matches!(dequantize(GgmlType::Q4_0, &[0; 36], &mut out), Err(QuantError::LengthMismatch { .. })));
    assert!(matches!(dequantize(GgmlType::Q4_K, &[0; 144], &mut out), Err(QuantError::NotBlockMultiple { .. })));
    assert!(matches!(dequantize_row_to_vec(GgmlType::Q8_0, &[0; 35]), Err(QuantError::LengthMismatch { .. })));
    assert_eq!(dequantize_row_to_vec(GgmlType::Q6_K, &[]).unwrap(), Vec::<f32>::new());
}

/// Hand-built blocks pin the layouts independently of the fixtures (nibble order, qh bit order,
/// K-quant scale packing).
#[test]
fn layouts_by_hand() {
    // Q4_0: d = 1.0; qs[0] = 0x9A -> elem 0 = 0xA - 8 = 2, elem 16 = 0x9 - 8 = 1.
    let mut b = vec![0x00, 0x3C];
    b.extend([0x88; 16]);
    b[2] = 0x9A;
    let y = dequantize_row_to_vec(GgmlType::Q4_0, &b).unwrap();
    assert_eq!((y[0], y[1], y[16], y[17]), (2.0, 0.0, 1.0, 0.0));
    // Q5_0: qh bit 1 -> elem 1 gets +16, bit 17 -> elem 17 gets +16.
    let mut b = vec![0x00, 0x3C];
    b.extend((1u32 << 1 | 1 << 17).to_le_bytes());
    b.extend([0u8; 16]);
    let y = dequantize_row_to_vec(GgmlType::Q5_0, &b).unwrap();
    assert_eq!((y[0], y[1], y[16], y[17]), (-16.0, 0.0, -16.0, 0.0));
    // Q4_K: sub-block 5's scale = low nibble of scales[9] | top 2 bits of scales[1] << 4.
    let mut b = vec![0x00, 0x3C, 0x00, 0x00]; // d = 1, dmin = 0
    let mut sc = [0u8; 12];
    sc[1] = 0b1100_0000; // top bits of scale 5 = 3
    sc[9] = 0x02; // low bits of scale 5 = 2 -> scale 5 = 50
    b.extend(sc);
    b.extend([0x11; 128]); // every quant = 1
    let y = dequantize_row_to_vec(GgmlType::Q4_K, &b).unwrap();
    assert_eq!(y[5 * 32], 50.0);
    assert_eq!(y[4 * 32], 0.0);
    assert_eq!(y[32], 0.0); // scale 1 is sc[1] & 63 = 0
}
