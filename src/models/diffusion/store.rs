//! Where the diffusion loaders get named tensors: [`TensorStore`], one small trait over a
//! safetensors file, a GGUF file (stable-diffusion.cpp's layout: PyTorch names, ggml types per
//! tensor) and a [`Renamed`] view that shows a single-file checkpoint's original names
//! (`model.diffusion_model.input_blocks.1.0.in_layers.0.weight`) under the diffusers names the
//! model code asks for (`down_blocks.0.resnets.0.norm1.weight`).
//!
//! Shapes are PyTorch order everywhere (`[out, in, kh, kw]`); GGUF's ggml order (`ne[0]`
//! fastest) is reversed once here. The bytes are the same row-major layout either way.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::quant::{dequantize, GgmlType};
use crate::safetensors::SafetensorsFile;
use crate::source::{read_gguf_header, ByteSource};

/// Named tensors, read one at a time by byte range.
#[allow(async_fn_in_trait)]
pub trait TensorStore {
    /// Where the tensors come from, for error messages.
    fn label(&self) -> &str;
    fn contains(&self, name: &str) -> bool;
    /// The tensor's shape (PyTorch order).
    fn shape(&self, name: &str) -> Result<Vec<usize>>;
    /// Every tensor name (any order).
    fn names(&self) -> Vec<String>;
    /// The tensor as f32, checked against `shape` (a 0 entry accepts any size there).
    async fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>>;
    /// The tensor's GGUF blocks when it is stored as `ty` (rows along the last dimension), so a
    /// pre-quantized weight goes to the GPU as it is; `None` when it is stored otherwise.
    async fn blocks(&self, name: &str, ty: GgmlType) -> Result<Option<Vec<u8>>>;
}

/// `have` against `want` (0 = any), as a named configuration error.
pub fn check_shape(label: &str, name: &str, have: &[usize], want: &[usize]) -> Result<()> {
    let fits = have.len() == want.len() && have.iter().zip(want).all(|(&a, &b)| b == 0 || a == b);
    match fits {
        true => Ok(()),
        false => Err(Error::ModelConfig(format!("{label}: tensor `{name}` has shape {have:?}, expected {want:?}"))),
    }
}

impl<S: ByteSource> TensorStore for SafetensorsFile<S> {
    fn label(&self) -> &str {
        &self.label
    }
    fn contains(&self, name: &str) -> bool {
        SafetensorsFile::contains(self, name)
    }
    fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(SafetensorsFile::shape(self, name)?.to_vec())
    }
    fn names(&self) -> Vec<String> {
        SafetensorsFile::names(self).map(str::to_string).collect()
    }
    async fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        SafetensorsFile::f32(self, name, shape).await
    }
    async fn blocks(&self, _name: &str, _ty: GgmlType) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

/// A GGUF file of diffusion weights (stable-diffusion.cpp's `sd convert` output): the header's
/// tensor table, indexed by name, and the bytes behind it.
pub struct GgufStore<S: ByteSource> {
    src: S,
    header: GgufFile,
    index: HashMap<String, usize>,
    label: String,
}

impl<S: ByteSource> GgufStore<S> {
    pub async fn open(src: S, label: &str) -> Result<GgufStore<S>> {
        let header = read_gguf_header(&src).await?;
        let index = header.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(GgufStore { src, header, index, label: label.to_string() })
    }

    pub fn header(&self) -> &GgufFile {
        &self.header
    }

    fn info(&self, name: &str) -> Result<&crate::gguf::TensorInfo> {
        self.index
            .get(name)
            .map(|&i| &self.header.tensors[i])
            .ok_or_else(|| Error::WeightsFormat(format!("{}: missing tensor `{name}`", self.label)))
    }
}

impl<S: ByteSource> TensorStore for GgufStore<S> {
    fn label(&self) -> &str {
        &self.label
    }
    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
    fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.info(name)?.dims.iter().rev().map(|&d| d as usize).collect())
    }
    fn names(&self) -> Vec<String> {
        self.index.keys().cloned().collect()
    }
    async fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.info(name)?;
        check_shape(&self.label, name, &self.shape(name)?, shape)?;
        let bytes = self.src.read(t.offset, t.n_bytes as usize).await?;
        let mut out = vec![0f32; t.n_elements as usize];
        dequantize(t.ty, &bytes, &mut out)
            .map_err(|e| Error::WeightsFormat(format!("{}: tensor `{name}`: {e}", self.label)))?;
        Ok(out)
    }
    async fn blocks(&self, name: &str, ty: GgmlType) -> Result<Option<Vec<u8>>> {
        let t = self.info(name)?;
        if t.ty != ty {
            return Ok(None);
        }
        Ok(Some(self.src.read(t.offset, t.n_bytes as usize).await?))
    }
}

/// One diffusers-named tensor of a [`Renamed`] view: where it is stored, and how to see it.
#[derive(Clone, Debug)]
pub struct Mapped {
    pub stored: String,
    /// The shape the model code sees (a VAE attention's 1×1 conv `[C, C, 1, 1]` is seen as the
    /// linear `[C, C]` diffusers has; same bytes).
    pub shape: Vec<usize>,
    /// Rows `[start, start + n)` of the stored tensor (OpenCLIP's fused `in_proj` holds q, k
    /// and v one above the other).
    pub rows: Option<(usize, usize)>,
}

/// A store seen under other names: the diffusers name → [`Mapped`] table of one component.
pub struct Renamed<'a, T: TensorStore> {
    pub inner: &'a T,
    pub map: HashMap<String, Mapped>,
    label: String,
}

impl<'a, T: TensorStore> Renamed<'a, T> {
    pub fn new(inner: &'a T, map: HashMap<String, Mapped>, component: &str) -> Self {
        let label = format!("{} ({component})", inner.label());
        Renamed { inner, map, label }
    }

    fn get(&self, name: &str) -> Result<&Mapped> {
        self.map.get(name).ok_or_else(|| Error::WeightsFormat(format!("{}: missing tensor `{name}`", self.label)))
    }
}

impl<T: TensorStore> TensorStore for Renamed<'_, T> {
    fn label(&self) -> &str {
        &self.label
    }
    fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
    fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.get(name)?.shape.clone())
    }
    fn names(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }
    async fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let m = self.get(name)?;
        check_shape(&self.label, name, &m.shape, shape)?;
        let stored = self.inner.shape(&m.stored)?;
        let all = self.inner.f32(&m.stored, &stored).await?;
        let Some((start, n)) = m.rows else { return Ok(all) };
        // Row slices: the stored tensor is [rows, rest…] and the view is n of those rows.
        let row = all.len() / stored.first().copied().unwrap_or(1).max(1);
        all.get(start * row..(start + n) * row)
            .map(<[f32]>::to_vec)
            .ok_or_else(|| Error::WeightsFormat(format!("{}: tensor `{}` has too few rows", self.label, m.stored)))
    }
    async fn blocks(&self, name: &str, ty: GgmlType) -> Result<Option<Vec<u8>>> {
        let m = self.get(name)?;
        let Some(bytes) = self.inner.blocks(&m.stored, ty).await? else { return Ok(None) };
        let Some((start, n)) = m.rows else { return Ok(Some(bytes)) };
        let stored = self.inner.shape(&m.stored)?;
        let rows = stored.first().copied().unwrap_or(1).max(1);
        let row = bytes.len() / rows;
        Ok(bytes.get(start * row..(start + n) * row).map(<[u8]>::to_vec))
    }
}

/// The weight quantization a GGUF diffusion file already has: the type most of its UNet's 2-D
/// weights are stored in, when it is one we keep (Q8_0 / Q4_0); f32 otherwise.
pub fn majority_quant(g: &GgufFile) -> crate::models::diffusion::nn::WeightQuant {
    use crate::models::diffusion::nn::WeightQuant;
    let unet = g.tensors.iter().filter(|t| t.name.starts_with(super::checkpoint::UNET) && t.dims.len() == 2);
    let (mut q8, mut q4, mut other) = (0, 0, 0);
    for t in unet {
        match t.ty {
            GgmlType::Q8_0 => q8 += 1,
            GgmlType::Q4_0 => q4 += 1,
            _ => other += 1,
        }
    }
    match (q8, q4) {
        (a, b) if a >= b && a > other => WeightQuant::Q8_0,
        (_, b) if b > other => WeightQuant::Q4_0,
        _ => WeightQuant::F32,
    }
}
