// Types for www/aigc.js, the public module of aigc.

export class AigcError extends Error {}
export class WebGpuUnavailableError extends AigcError {}
/** Not a usable GGUF file. A download that turns out so is also removed from the cache. */
export class ModelFormatError extends AigcError {}
export class UnsupportedModelError extends AigcError {}
export class ContextOverflowError extends AigcError {}
export class DeviceLostError extends AigcError {}
/** The browser's storage quota is too small for the model (or a cache write hit it). */
export class StorageQuotaError extends AigcError {}
/** A cached copy failed its size/SHA-256 check even after its damaged part was downloaded again (the entry is deleted). */
export class CacheCorruptError extends AigcError {}
export class InvalidOptionError extends AigcError {}
export class TokenizerError extends AigcError {}
export class ChatTemplateError extends AigcError {}
export class OutOfMemoryError extends AigcError {}
export class GpuError extends AigcError {}
export class IoError extends AigcError {}
export class AbortError extends AigcError {}

/**
 * Load progress. `done`/`total` are bytes for 'download' (from the network into the cache; a
 * resumed download starts at the stored offset), 'verify' (checking the stored copy), 'store'
 * (copying a File into the cache) and 'upload' (to the GPU); 'compile' follows the upload.
 * `error` is set on the one event that reports a StorageQuotaError: loading then continues from
 * the network without caching (also reported as `ModelInfo.cache.error`).
 */
export interface Progress {
  phase: 'init' | 'download' | 'verify' | 'store' | 'upload' | 'compile';
  done: number; total: number;
  error?: { name: 'StorageQuotaError'; message: string };
}

/** A model kept in this browser's storage (OPFS, or the Cache API where OPFS is missing). */
export interface CachedModel {
  /** What `engine.load(name)` and `Engine.deleteCached(name)` take: the URL's file name (made unique). */
  name: string;
  /** Where it was downloaded from; null when it was stored from a File. */
  url: string | null;
  size: number;
  /** false: a download was interrupted; the next load of the URL or name resumes at `bytesDone`. */
  complete: boolean;
  bytesDone: number;
  /** ms since the epoch */
  created: number;
  backend: 'opfs' | 'cache-api';
}

/** How a load used the cache (`ModelInfo.cache`). */
export interface CacheInfo {
  /** true: the engine read a stored copy whose every chunk was checked (size and SHA-256). */
  stored: boolean;
  name?: string; url?: string | null; size?: number; complete?: boolean; bytesDone?: number;
  created?: number;
  /** null when the browser has no usable storage (the model was read from the network). */
  backend?: 'opfs' | 'cache-api' | null;
  /** Bytes fetched from the network into the cache by this load (0 when it was all stored). */
  downloaded?: number;
  /** Offset this load's download started at (0 = fresh, > 0 = resumed), null when nothing was fetched. */
  resumedFrom?: number | null;
  /** Offset of the first chunk found damaged and downloaded again, null when the copy was intact. */
  repairedFrom?: number | null;
  /** Set when the quota was full: the entry was deleted and the model loaded from the network. */
  error?: { name: 'StorageQuotaError'; message: string };
  /** An image model folder by URL: how many of its files are stored (one entry each), and its URL. */
  files?: number; base?: string;
}

export interface AdapterInfo {
  name: string; backend: string; device_type: string; driver: string;
  max_storage_binding: number; max_buffer: number; max_workgroup_storage: number;
  max_invocations_per_workgroup: number; max_workgroups_per_dim: number;
  max_storage_buffers_per_stage: number; shader_f16: boolean; subgroups: boolean;
}

export interface ModelInfo {
  name: string; architecture: string; n_layer: number; n_embd: number; vocab: number;
  ctx: number; chat_template: boolean; weight_bytes: number;
  cache: CacheInfo;
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

export interface ImageModelInfo { kind: 'image'; gpu_weight_bytes: number; quant: string; vae_scale: number; img2img: boolean;
  /** The folder has a `taesd/` decoder: `previews: true` gives a picture at every step. */
  previews: boolean;
  /** A 9-channel inpainting UNet: every request needs `image` and `mask`. */
  inpainting_model: boolean;
  /** How a single-file URL used the model cache (`{stored: false}` for folders and Files). */
  cache: CacheInfo }
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
  /** TAESD previews of each candidate's denoised estimate at every step (needs `taesd/`). */
  previews?: boolean;
  /**
   * How the UNet stores its activations (default 'f32'). 'f16' halves them and needs an adapter
   * with `shader_f16`; without it the call fails with InvalidOptionError. Arithmetic stays f32.
   */
  activations?: 'f32' | 'f16';
  /** After each step; `previews` holds one PNG per candidate when asked for, else []. */
  onStep?: (s: { step: number; steps: number; previews: Blob[] }) => void;
}
export interface ImagesResponse {
  created: number;
  data: { b64_json: string; blob: Blob; seed: number }[];
  aigc: { width: number; height: number; seconds_per_step: number; total_seconds: number; seeds: number[] };
}

export class Engine {
  /**
   * Start the engine (in a Web Worker unless worker: false) and acquire the WebGPU device.
   * `onDeviceLost` receives a DeviceLostError when the browser takes the device away; load the
   * model again to continue (a new device is brought up). `maxStorageBinding` is a testing knob
   * (bytes): weights are split as if the storage-binding limit were that small.
   */
  static create(options?: {
    onProgress?: (p: Progress) => void; worker?: boolean;
    onDeviceLost?: (e: DeviceLostError) => void; maxStorageBinding?: number;
  }): Promise<Engine>;
  /** The models in this browser's cache, complete or partial (no engine needed). */
  static cached(): Promise<CachedModel[]>;
  /** Delete a cached model by name (or URL); false when there was none. */
  static deleteCached(name: string): Promise<boolean>;
  readonly adapter: AdapterInfo;
  readonly model: ModelInfo | null;
  /**
   * A URL, the name of a cached model (a string equal to a `CachedModel.name`), or a File/Blob.
   * `cache` (default true for URLs, false for Files/Blobs): keep a copy in the browser's storage
   * and load from it; a URL is downloaded (or resumed, or repaired) into the cache first, then the
   * stored copy is checked and read. `false` reads a URL by HTTP range requests as before.
   * Rejects with AbortError when `signal` fires (a download stops at once and resumes next time),
   * IoError (network), CacheCorruptError; a full quota does NOT reject (see CacheInfo.error).
   */
  load(source: string | URL | Blob, options?: {
    onProgress?: (p: Progress) => void; signal?: AbortSignal; ctx?: number; cache?: boolean;
    /** 'f32' (default: exact) or 'ggml' (activations rounded to 8 bits as llama.cpp's CPU backend does). */
    numerics?: 'f32' | 'ggml';
  }): Promise<ModelInfo>;
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
    /**
     * A diffusers folder's base URL, or a single-file checkpoint (`.safetensors`, or a
     * stable-diffusion.cpp `.gguf`) whose tokenizer/configs come from the folder `config`
     * (default: the file's directory). Both go through the model cache first (unless
     * `cache: false`, which reads them with HTTP range requests): a folder's files are stored
     * one entry each, named `folder/rel`. Or such a file as a File/Blob (drag-and-drop), read by
     * slices; `config` is then required. Or a folder from disk: the FileList of an
     * `<input webkitdirectory>`, File[] with `relativePath`/`webkitRelativePath`, or
     * `{[path: string]: Blob}` — a diffusers folder, or one top-level checkpoint beside its
     * tokenizer (and configs).
     */
    load(src: string | URL | Blob | FileList | File[] | Record<string, Blob>, options?: { quant?: 'f32' | 'q8_0' | 'q4_0'; config?: string | URL; cache?: boolean; onProgress?: (p: Progress) => void }): Promise<ImageModelInfo>;
    generate(o: ImageOptions): Promise<ImagesResponse>;
  };
}
