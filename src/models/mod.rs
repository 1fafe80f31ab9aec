//! Model architectures. Text: the llama family ([`llama`], configured by [`config`]).

pub mod config;
pub mod llama;
