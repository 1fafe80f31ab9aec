//! Pixels and arrays in and out of the diffusion pipeline: PNG encode/decode (the `image`
//! crate's `png` codec) and float32 `.npy` arrays (initial latents given from outside, as
//! diffusers' `latents=` argument, so a run can be compared with any other implementation).
//!
//! Layouts: images are 8-bit RGB, row-major, interleaved (`[H][W][3]`); latents are f32 in
//! PyTorch's order `[B, C, h, w]`. Model-space images are in [-1, 1] (`to_rgb8` / `from_rgb8`
//! convert with diffusers' rounding: `round(clamp(x / 2 + 0.5, 0, 1) · 255)`).

use crate::error::{Error, Result};

/// An 8-bit RGB picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    /// `width · height · 3` bytes, row-major, interleaved.
    pub data: Vec<u8>,
}

/// `[3, H, W]` planes in [-1, 1] → interleaved 8-bit RGB.
pub fn to_rgb8(planes: &[f32], width: usize, height: usize) -> Result<Rgb8> {
    let n = width * height;
    if planes.len() != 3 * n {
        return Err(Error::Gpu(format!("decoder returned {} values for a {width}×{height} image", planes.len())));
    }
    let mut data = vec![0u8; 3 * n];
    for c in 0..3 {
        for (i, &v) in planes[c * n..(c + 1) * n].iter().enumerate() {
            // NaN maps to 0 (clamp keeps NaN; `as u8` saturates NaN to 0).
            data[3 * i + c] = ((v / 2.0 + 0.5).clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    Ok(Rgb8 { width, height, data })
}

/// Interleaved 8-bit RGB → `[3, H, W]` planes in [-1, 1] (diffusers' `2 · x/255 − 1`).
pub fn from_rgb8(img: &Rgb8) -> Vec<f32> {
    let n = img.width * img.height;
    let mut planes = vec![0f32; 3 * n];
    for i in 0..n {
        for c in 0..3 {
            planes[c * n + i] = img.data[3 * i + c] as f32 / 255.0 * 2.0 - 1.0;
        }
    }
    planes
}

/// PNG bytes of an RGB picture.
pub fn encode_png(img: &Rgb8) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    let (w, h) = (u32::try_from(img.width), u32::try_from(img.height));
    let (Ok(w), Ok(h)) = (w, h) else {
        return Err(Error::InvalidOption(format!("image {}×{} is too large for PNG", img.width, img.height)));
    };
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&img.data, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::Io(format!("PNG encoding: {e}")))?;
    Ok(out)
}

/// Decode a PNG (any colour type; alpha dropped, grey expanded) to RGB.
pub fn decode_png(bytes: &[u8]) -> Result<Rgb8> {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map_err(|e| Error::InvalidOption(format!("not a readable PNG image: {e}")))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    Ok(Rgb8 { width: w as usize, height: h as usize, data: img.into_raw() })
}

/// A float32 array read from `.npy` (version 1–3, little-endian `<f4`, C order).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyF32 {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

fn npy_err(msg: impl std::fmt::Display) -> Error {
    Error::InvalidOption(format!("latents .npy: {msg}"))
}

/// Parse a `.npy` file holding float32 values. Anything else (other dtypes, Fortran order,
/// truncated data) is a named error.
pub fn read_npy_f32(bytes: &[u8]) -> Result<NpyF32> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(npy_err("not a .npy file (bad magic)"));
    }
    let (hlen, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(npy_err(format!("unsupported version {v}"))),
    };
    let header = bytes.get(start..start.saturating_add(hlen)).ok_or_else(|| npy_err("header runs past the end"))?;
    let header = std::str::from_utf8(header).map_err(|_| npy_err("header is not text"))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").ok_or_else(|| npy_err("no descr"))?;
    if !(descr.starts_with("'<f4'") || descr.starts_with("'float32'")) {
        return Err(npy_err(format!("dtype must be little-endian float32 ('<f4'), header says {header:?}")));
    }
    if !field("fortran_order").is_some_and(|v| v.starts_with("False")) {
        return Err(npy_err("Fortran order is not supported"));
    }
    let shape_text = field("shape").ok_or_else(|| npy_err("no shape"))?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| npy_err("bad shape"))?;
    let mut shape = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        shape.push(part.parse::<usize>().map_err(|_| npy_err(format!("bad dimension {part:?}")))?);
    }
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| npy_err("shape overflows"))?;
    let body = &bytes[start + hlen..];
    if Some(body.len()) != n.checked_mul(4) {
        return Err(npy_err(format!("shape {shape:?} needs {} data bytes, the file has {}", n.saturating_mul(4), body.len())));
    }
    let data = body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(NpyF32 { shape, data })
}

/// A version-1 `.npy` file of float32 values in C order.
pub fn write_npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad with spaces so the data starts on a 64-byte boundary; the header ends with '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    for v in data {
        out.extend(v.to_le_bytes());
    }
    out
}

/// Peak signal-to-noise ratio in dB between two 8-bit pictures of one size (∞ when identical).
pub fn psnr(a: &Rgb8, b: &Rgb8) -> f64 {
    let mse: f64 = a.data.iter().zip(&b.data).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>()
        / a.data.len().max(1) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}
