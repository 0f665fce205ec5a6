/** Reading a request body with a size bound. */
import type { NodeRequest } from '../server/adapters/node.js';
import { HttpError } from './errors.js';

/** Reads the whole body, answering 413 as soon as it exceeds `max` bytes (by Content-Length or by counting). */
export function readBody(req: NodeRequest, max: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > max) {
    return Promise.reject(new HttpError(413, 'body-too-large', `the body is ${declared} bytes; this hub accepts at most ${max} (--max-body)`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.off('data', onData);
        req.resume();
        reject(new HttpError(413, 'body-too-large', `the body is larger than ${max} bytes, the most this hub accepts (--max-body)`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    req.once('error', (error) => reject(new HttpError(400, 'bad-body', `could not read the body: ${error.message}`)));
    req.once('aborted', () => reject(new HttpError(400, 'bad-body', 'the client aborted the request')));
  });
}
