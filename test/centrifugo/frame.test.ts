// The WebSocket sink writes whole text frames it makes itself (shared by every subscriber of a
// fan-out): they must be the very bytes the `ws` library would frame, at every length form.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRequire } from 'node:module';
import { textFrame } from '../../src/hub/centrifugo/outlet.js';

// `ws` exports its Sender (not in its type definitions).
const { Sender } = createRequire(import.meta.url)('ws') as { Sender: { frame(data: Buffer, options: Record<string, unknown>): Buffer[] } };

/** What `ws` sends for a text message of `payload` (server side: no mask). */
function wsFrame(payload: Buffer): Buffer {
  const frame = Sender.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false });
  return Buffer.concat(frame);
}

describe('WebSocket text frames', () => {
  for (const length of [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]) {
    it(`frames ${length} bytes as ws does (7-bit, 16-bit or 64-bit length)`, () => {
      const payload = Buffer.alloc(length, 'a');
      assert.deepEqual(textFrame(new Uint8Array(payload)), wsFrame(payload));
    });
  }

  it('leaves out a last newline (the SDKs split messages on newlines), and keeps the others', () => {
    const lines = Buffer.from('{"push":1}\n{"push":2}\n');
    assert.deepEqual(textFrame(lines), wsFrame(Buffer.from('{"push":1}\n{"push":2}')));
  });

  it('makes the frame of the same bytes once, for every subscriber they go to', () => {
    const bytes = Buffer.from('{"push":{"channel":"a"}}\n');
    assert.equal(textFrame(bytes), textFrame(bytes));
    assert.notEqual(textFrame(Buffer.from(bytes)), textFrame(bytes));
  });
});
