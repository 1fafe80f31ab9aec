//! Stable-Diffusion-family image generation: the CLIP text encoder ([`clip`]), the denoising
//! UNet ([`unet`]), the VAE decoder ([`vae`]) built from [`blocks`] and the layers in [`nn`],
//! the TAESD preview decoder ([`taesd`]),
//! configured by diffusers' `config.json` files ([`config`]) and loaded from safetensors.
//!
//! Data flow, prompt → pixels: CLIP tokenizer → text encoder → seeded latents → scheduler loop
//! (UNet with classifier-free guidance, scheduler step) → VAE decode → RGB bytes.

pub mod blocks;
pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod imageio;
pub mod load;
pub mod nn;
pub mod noise;
pub mod pipeline;
pub mod scheduler;
pub mod store;
pub mod taesd;
pub mod unet;
pub mod vae;
