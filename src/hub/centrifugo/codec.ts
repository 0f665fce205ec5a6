/**
 * The Centrifugo client protocol v2 in JSON, as bytes: commands in, replies and pushes out. Pure
 * (no I/O). A frame (a WebSocket message, the body of an HTTP-streaming or emulation request)
 * holds one or more commands, one JSON object per line; every reply or push is one line. A
 * `bytes` field of the protocol (publication data, connect data) travels as raw JSON.
 *
 * Source of truth: client.proto in github:centrifugal/protocol; what the JS SDK (`centrifuge`)
 * sends and expects is the contract.
 */

/** The methods of a command, in the order a command's fields are looked at (the first present is taken). */
export const METHODS = ['connect', 'subscribe', 'unsubscribe', 'publish', 'presence', 'presence_stats', 'history', 'ping', 'send', 'rpc', 'refresh', 'sub_refresh'] as const;

/** One of METHODS. */
export type Method = (typeof METHODS)[number];

/** A command as read from a frame. */
export type Command =
  /** `{}` without an ID: the answer to a server ping. */
  | { kind: 'pong' }
  /** A request: its ID (0 for `send`, which gets no reply), method and parameters (an object). */
  | { kind: 'request'; id: number; method: Method; params: Record<string, unknown> }
  /** An object with an ID but no method this protocol knows (answered "method not found"). */
  | { kind: 'unknown'; id: number; fields: string[] };

/** A frame that is not commands: the client broke the protocol (answered by a disconnect). */
export class FrameError extends Error {
  override readonly name = 'FrameError';
}

const LARGEST_ID = 2 ** 32 - 1;

/** Reads the commands of a frame; throws FrameError for a line that is not a JSON object or an ID that is not a uint32. */
export function parseFrame(frame: string): Command[] {
  const commands: Command[] = [];
  let start = 0;
  while (start <= frame.length) {
    let end = frame.indexOf('\n', start);
    if (end === -1) end = frame.length;
    const line = frame.slice(start, end);
    start = end + 1;
    if (line.trim() === '') continue;
    commands.push(parseCommand(line));
  }
  return commands;
}

function parseCommand(line: string): Command {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new FrameError(`a command is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FrameError('a command must be a JSON object');
  const command = value as Record<string, unknown>;
  const id = command.id ?? 0;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > LARGEST_ID) throw new FrameError(`a command's "id" must be an unsigned 32-bit integer, got ${JSON.stringify(id)}`);
  for (const method of METHODS) {
    const params = command[method];
    if (params === undefined || params === null) continue;
    if (typeof params !== 'object' || Array.isArray(params)) throw new FrameError(`"${method}" must be an object`);
    return { kind: 'request', id, method, params: params as Record<string, unknown> };
  }
  const fields = Object.keys(command).filter((k) => k !== 'id');
  if (id === 0 && fields.length === 0) return { kind: 'pong' };
  return { kind: 'unknown', id, fields };
}

/** A JSON text to embed as it is (a `bytes` field, a publication already encoded). */
export class Raw {
  readonly json: string;
  constructor(json: string) {
    this.json = json;
  }
}

/** Serialises `value` as JSON, embedding Raw values as they are. */
export function toJson(value: unknown): string {
  if (value instanceof Raw) return value.json;
  if (Array.isArray(value)) return `[${value.map(toJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const parts: string[] = [];
    for (const [key, v] of Object.entries(value)) if (v !== undefined) parts.push(`${JSON.stringify(key)}:${toJson(v)}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A reply to command `id`: its result under the method's name. */
export function replyJson(id: number, method: Method, result: unknown): string {
  return `{"id":${id},${JSON.stringify(method)}:${toJson(result)}}`;
}

/** An error reply to command `id`. */
export function errorJson(id: number, error: { code: number; message: string; temporary?: boolean | undefined }): string {
  return toJson({ id, error: { code: error.code, message: error.message, temporary: error.temporary === true ? true : undefined } });
}

/** A push: `{"push":{"channel":…,<kind>:…}}`. */
export function pushJson(channel: string | undefined, kind: string, body: unknown): string {
  return `{"push":{${channel === undefined ? '' : `"channel":${JSON.stringify(channel)},`}${JSON.stringify(kind)}:${toJson(body)}}}`;
}

/** A server ping (an empty reply). */
export const PING_JSON = '{}';

/**
 * A JSON value given as text, ready to embed in a line: the text itself when it is valid JSON
 * (its line breaks, whitespace between tokens, become spaces), else the text as a JSON string.
 */
export function jsonValueOf(text: string): string {
  try {
    JSON.parse(text);
  } catch {
    return JSON.stringify(text);
  }
  // Inside a valid JSON text CR and LF can only be whitespace (in strings they are escaped).
  return /[\r\n]/.test(text) ? text.replace(/[\r\n]/g, ' ') : text;
}
