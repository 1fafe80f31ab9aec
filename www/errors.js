// The named error classes of aigc, shared by aigc.js (which re-exports them: the public import
// stays `import { StorageQuotaError } from './aigc.js'`) and cache.js. They live in their own
// module so that cache.js does not import aigc.js, which imports cache.js (a cycle would make
// the classes undefined while one of the two modules is still evaluating).
//
// An error's `name` is its class name and is what crosses the worker boundary: the host sends
// {name, message}, `toError` rebuilds an instance of the same class on this side.

export class AigcError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}
export class WebGpuUnavailableError extends AigcError {}
export class ModelFormatError extends AigcError {}
export class UnsupportedModelError extends AigcError {}
export class ContextOverflowError extends AigcError {}
export class DeviceLostError extends AigcError {}
export class StorageQuotaError extends AigcError {}
export class CacheCorruptError extends AigcError {}
export class InvalidOptionError extends AigcError {}
export class TokenizerError extends AigcError {}
export class ChatTemplateError extends AigcError {}
export class OutOfMemoryError extends AigcError {}
export class GpuError extends AigcError {}
export class IoError extends AigcError {}
export class AbortError extends AigcError {}

const CLASSES = {
  WebGpuUnavailableError, ModelFormatError, UnsupportedModelError, ContextOverflowError,
  DeviceLostError, StorageQuotaError, CacheCorruptError, InvalidOptionError, TokenizerError,
  ChatTemplateError, OutOfMemoryError, GpuError, IoError, AbortError,
};

export function toError({ name, message }) {
  const Cls = CLASSES[name] || AigcError;
  return new Cls(message);
}
