/** Reading a request body with a size bound. */
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import { HttpError } from './errors.js';

/**
 * Reads the whole body, answering 413 as soon as it exceeds `max` bytes (by Content-Length or by
 * counting). A client that sent `Expect: 100-continue` is told to go on only here, once the head
 * has passed every check, so a refused request is answered before its body is sent at all.
 */
export function readBody(req: NodeRequest, res: NodeResponse, max: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > max) {
    return Promise.reject(new HttpError(413, 'body-too-large', `the body is ${declared} bytes; this hub accepts at most ${max} (--max-body)`));
  }
  if (/^\s*100-continue\s*$/i.test(req.headers.expect ?? '') && !res.headersSent) res.writeContinue();
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
