// Types for www/aigc.js, the public module of aigc.

export class AigcError extends Error {}
export class WebGpuUnavailableError extends AigcError {}
export class ModelFormatError extends AigcError {}
export class UnsupportedModelError extends AigcError {}
export class ContextOverflowError extends AigcError {}
export class DeviceLostError extends AigcError {}
export class StorageQuotaError extends AigcError {}
export class InvalidOptionError extends AigcError {}
export class TokenizerError extends AigcError {}
export class ChatTemplateError extends AigcError {}
export class OutOfMemoryError extends AigcError {}
export class GpuError extends AigcError {}
export class IoError extends AigcError {}
export class AbortError extends AigcError {}

export interface Progress { phase: 'init' | 'download' | 'upload' | 'compile'; done: number; total: number }

export interface AdapterInfo {
  name: string; backend: string; device_type: string; driver: string;
  max_storage_binding: number; max_buffer: number; max_workgroup_storage: number;
  max_invocations_per_workgroup: number; max_workgroups_per_dim: number;
  max_storage_buffers_per_stage: number; shader_f16: boolean; subgroups: boolean;
}

export interface ModelInfo {
  name: string; architecture: string; n_layer: number; n_embd: number; vocab: number;
  ctx: number; chat_template: boolean; weight_bytes: number;
}

export interface SamplingOptions {
  max_tokens?: number;
  /** 0 = greedy */
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p?: number;
  repetition_penalty?: number;
  /** Same seed, same tokens (natively and in the browser). Omitted: a fresh seed per call. */
  seed?: number;
  stop?: string | string[];
  signal?: AbortSignal;
}

export interface Message { role: 'system' | 'user' | 'assistant' | string; content: string }
export type FinishReason = 'stop' | 'length' | 'abort';
export interface Usage {
  prompt_tokens: number; completion_tokens: number; total_tokens: number;
  prefill_tokens_per_s: number; decode_tokens_per_s: number;
}

export interface ChatCompletion {
  id: string; object: 'chat.completion'; created: number; model: string;
  choices: [{ index: 0; message: { role: 'assistant'; content: string }; finish_reason: FinishReason }];
  usage: Usage; aigc: { tokens: number[] };
}
export interface ChatCompletionChunk {
  id: string; object: 'chat.completion.chunk'; created: number; model: string;
  choices: [{ index: 0; delta: { content?: string }; finish_reason: FinishReason | null }];
  usage?: Usage; aigc?: { tokens: number[] };
}
export interface Completion {
  id: string; object: 'text_completion'; created: number; model: string;
  choices: [{ index: 0; text: string; finish_reason: FinishReason | null }];
  usage?: Usage; aigc?: { tokens: number[] };
}

export interface ImageModelInfo { kind: 'image'; gpu_weight_bytes: number; quant: string; vae_scale: number; img2img: boolean }
export type PngBytes = Blob | ArrayBuffer | Uint8Array;
export interface ImageOptions {
  prompt: string;
  negative_prompt?: string;
  /** Candidates, seeds seed, seed+1, … (1–16). */
  n?: number;
  /** "WxH", multiples of 64 for SD (default "512x512"). */
  size?: string;
  steps?: number;
  /** ≤ 1 turns classifier-free guidance off. Default 7.5. */
  guidance_scale?: number;
  /** Same seed, same pixels (natively and in the browser). Omitted: a fresh seed. */
  seed?: number;
  scheduler?: 'euler' | 'euler_a' | 'dpmpp_2m' | 'ddim' | 'lcm' | 'turbo';
  /** img2img: a PNG of the requested size; inpainting adds `mask` (white = repaint). */
  image?: PngBytes;
  mask?: PngBytes;
  /** img2img: fraction of the schedule to run (default 0.8). */
  strength?: number;
  signal?: AbortSignal;
  onStep?: (s: { step: number; steps: number }) => void;
}
export interface ImagesResponse {
  created: number;
  data: { b64_json: string; blob: Blob; seed: number }[];
  aigc: { width: number; height: number; seconds_per_step: number; total_seconds: number; seeds: number[] };
}

export class Engine {
  /** Start the engine (in a Web Worker unless worker: false) and acquire the WebGPU device. */
  static create(options?: { onProgress?: (p: Progress) => void; worker?: boolean }): Promise<Engine>;
  readonly adapter: AdapterInfo;
  readonly model: ModelInfo | null;
  /** A URL (read with HTTP range requests) or a File/Blob. */
  load(source: string | URL | Blob, options?: { onProgress?: (p: Progress) => void; signal?: AbortSignal; ctx?: number }): Promise<ModelInfo>;
  unload(): Promise<void>;
  chat: {
    completions: {
      create(o: SamplingOptions & { messages: Message[]; stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(o: SamplingOptions & { messages: Message[]; stream?: false }): Promise<ChatCompletion>;
    };
  };
  completions: {
    create(o: SamplingOptions & { prompt: string; stream: true }): Promise<AsyncIterable<Completion>>;
    create(o: SamplingOptions & { prompt: string; stream?: false }): Promise<Completion>;
  };
  images: {
    /** A diffusers folder's base URL; every file is read with HTTP range requests. */
    load(url: string | URL, options?: { quant?: 'f32' | 'q8_0' | 'q4_0'; onProgress?: (p: Progress) => void }): Promise<ImageModelInfo>;
    generate(o: ImageOptions): Promise<ImagesResponse>;
  };
}
