//! aigc: quantized text (and, later, image) generation on WebGPU — natively through wgpu and in
//! the browser through wasm — with our own WGSL kernels on burn's wgpu tensors.
//!
//! Data flow, model file → tokens:
//! [`source::ByteSource`] reads a prefix → [`gguf`] parses the header → [`models::config`] and
//! [`tokenizer`] from metadata → each tensor read by byte range and uploaded in its quant
//! blocks ([`models::llama`]) → [`generate`] tokenizes, prefills, then loops
//! `forward → logits → sampling → token → streamed piece`.
//!
//! Modules: `gguf` + `quant` (file format, CPU dequantization oracle), `gpu` (device, limits,
//! readback), `kernels` (WGSL launches + CPU references), `models` (llama family), `tokenizer`,
//! `chat` (templates), `sampling`, `generate`, `engine` (the high-level API both the CLI and
//! `web` use), `web` (wasm-bindgen only; wasm builds).

pub mod chat;
pub mod engine;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod gpu;
pub mod kernels;
pub mod models;
pub mod quant;
pub mod safetensors;
pub mod sampling;
pub mod source;
pub mod tokenizer;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
