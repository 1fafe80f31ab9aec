// The default engine host: a module Web Worker, so the page's main thread never blocks.
import { createHost } from './host.js';

const onMessage = createHost((m) => self.postMessage(m));
self.onmessage = (ev) => onMessage(ev.data);
