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
}
