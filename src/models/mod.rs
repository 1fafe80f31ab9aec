//! Model architectures. Text: the llama family ([`llama`], configured by [`config`]). Images:
//! Stable Diffusion ([`diffusion`]).

pub mod config;
pub mod llama;
pub mod diffusion;
