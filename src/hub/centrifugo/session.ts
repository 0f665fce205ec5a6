/**
 * A Session: one Centrifugo client connection's protocol state machine, the same over every
 * client transport (WebSocket, bidirectional SSE, HTTP streaming). Frames come in (`receive`),
 * replies and pushes go out through the connection's outlet. Commands are handled one after the
 * other, in the order they came; a pong and the rate limit are dealt with as they arrive.
 *
 * What each command means in the core: `connect` verifies the token as every ssehub token is
 * verified (its `mercure.subscribe` decides the private updates the client receives, its
 * `mercure.publish` where it may publish); `subscribe` joins a subscriber for the channel (a
 * topic) onto the connection, recovering from an offset through the transport's history;
 * `publish` is a Hub.publish; `presence` reads the cluster's presence. Nothing here copies the
 * join or the fan-out.
 */
import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import { sharedHeartbeat } from '../../server/heartbeat.js';
import type { Heartbeat, HeartbeatTarget } from '../../server/heartbeat.js';
import type { ClientTransport, Connection } from '../core/connection.js';
import { InvalidTokenError } from '../core/errors.js';
import { type Grant, assertMayPublish, grantMatchers } from '../core/grant.js';
import type { Subscription } from '../core/join.js';
import type { EndReason } from '../core/outlet.js';
import { matchesAny } from '../core/selector.js';
import type { Update } from '../core/update.js';
import { isReservedTopic } from '../mercure/publish.js';
import { type Command, FrameError, type Method, PING_JSON, Raw, errorJson, parseFrame, pushJson, replyJson } from './codec.js';
import type { GatewayContext } from './context.js';
import { CentrifugoError, type Disconnect, DISCONNECTS, type ProtocolError, disconnectOf, protocolError, reconnects, toProtocolError } from './errors.js';
import type { ClientStream, WebSocketSink } from './outlet.js';
import { type Framing, dataOfPublication, framed, publicationJson } from './publication.js';

/** The longest channel name taken (a topic IRI can be long; a URL is at most 64 KiB anyway). */
const MAX_CHANNEL = 4096;

/**
 * How long past its token's `exp` a connection (or subscription) that was not refreshed stays: the
 * SDK refreshes when the `ttl` it was told has passed, and its getToken may call a backend.
 * (Centrifugo waits 25 s, `client_expired_close_delay`.)
 */
const EXPIRED_CLOSE_DELAY_MS = 5000;

/** A timer's delay until `expiresAt` plus the grace above (capped: a far-future exp must not overflow the timer, which would fire at once). */
function untilExpired(expiresAt: number): number {
  return Math.min(Math.max(expiresAt - Date.now(), 0) + EXPIRED_CLOSE_DELAY_MS, 2 ** 31 - 1);
}

/** The flag of a subscribe asking for an error rather than `recovered: false` (the SDK's getState). */
const REJECT_UNRECOVERED = 2;

/** A channel subscription of a session. */
interface Channel {
  channel: string;
  state: 'subscribing' | 'subscribed';
  /** The core's subscriber for it, once joined. */
  subscription: Subscription | undefined;
  /** Unsubscribed (by the server) while the join was in progress. */
  cancelled: boolean;
  /** Join and leave pushes asked for and allowed. */
  joinLeave: boolean;
  /** A subscription token's expiry. */
  expiry: NodeJS.Timeout | undefined;
}

/** How a session's client came: what the front-end's transport handler knows. */
export interface SessionInit {
  connection: Connection;
  outlet: ClientStream;
  framing: Framing;
  /** The WebSocket sink, whose close frame carries the disconnect advice. */
  webSocket?: WebSocketSink | undefined;
  /** An emulation session's ID (bidirectional SSE, HTTP streaming). */
  emulationId?: string | undefined;
  /** The `aud` values an access token may name here (the hub's resource identifier as the client reached it). */
  audiences: readonly string[];
}

/** The client information of presence, join and leave. */
export interface ClientInfo {
  client: string;
  user: string;
  conn_info?: Raw | undefined;
}

/** A JSON value of a token's payload, as a protocol `bytes` field. */
export function rawOf(value: unknown): Raw | undefined {
  if (value === undefined) return undefined;
  const json = JSON.stringify(value);
  return json === undefined ? undefined : new Raw(json);
}

/** One client connection. */
export class Session implements HeartbeatTarget {
  /** The client ID (Centrifugo's `client`), also the core connection's ID. */
  readonly id: string;
  readonly emulationId: string | undefined;
  readonly connection: Connection;
  readonly transport: ClientTransport;
  state: 'connecting' | 'connected' | 'closed' = 'connecting';
  /** What the connection token grants (`undefined`: anonymous). */
  grant: Grant | undefined;
  /** Where it may publish: the token's `mercure.publish`, when the publisher key verifies it too. */
  publish: Grant | undefined;
  readonly channels = new Map<string, Channel>();
  readonly #ctx: GatewayContext;
  readonly #outlet: ClientStream;
  readonly #framing: Framing;
  readonly #webSocket: WebSocketSink | undefined;
  readonly #audiences: readonly string[];
  #queue: Promise<void> = Promise.resolve();
  /** The advice sent when the connection ends (set by the reason it ends for, unless given). */
  #advice: Disconnect | undefined;
  #stale: NodeJS.Timeout | undefined;
  #expiry: NodeJS.Timeout | undefined;
  #heartbeat: Heartbeat | undefined;
  #pingTick = 0;
  #awaitingPong = false;
  /** The command rate's token bucket, and commands refused in the current second. */
  #tokens: number;
  #refilled = Date.now();
  #refused = 0;
  #refusedSince = Date.now();

  constructor(ctx: GatewayContext, init: SessionInit) {
    this.#ctx = ctx;
    this.connection = init.connection;
    this.id = init.connection.id;
    this.transport = init.connection.transport;
    this.emulationId = init.emulationId;
    this.#outlet = init.outlet;
    this.#framing = init.framing;
    this.#webSocket = init.webSocket;
    this.#audiences = init.audiences;
    this.#tokens = Math.max(1, ctx.hub.config.centrifugoCommandRate);
    init.outlet.onEnding((reason, graceful) => this.#ending(reason, graceful));
    init.outlet.once('close', () => this.#closed());
    // A connection that never says who it is is dropped: it holds a place against the limits.
    this.#stale = setTimeout(() => this.disconnect('stale'), ctx.hub.config.requestTimeout);
    ctx.sessions.add(this);
  }

  /** Whether the connection ended (a method: it changes while a command waits). */
  #over(): boolean {
    return this.state === 'closed';
  }

  /** The user (the token's `sub`; '' when anonymous or without one). */
  get user(): string {
    return this.grant?.subject ?? '';
  }

  /** Handles a frame of commands (one WebSocket message, the data of an emulation request). */
  receive(frame: string): void {
    try {
      this.#receive(frame);
    } catch (error) {
      this.#failed(error);
    }
  }

  #receive(frame: string): void {
    if (this.#over()) return;
    let commands: Command[];
    try {
      commands = parseFrame(frame);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      this.#ctx.hub.log.info({ conn: this.id, err: error.message }, 'centrifugo: a frame that is not commands; disconnected (bad request)');
      this.disconnect('bad-request');
      return;
    }
    for (const command of commands) {
      if (this.#over()) return;
      if (command.kind === 'pong') {
        this.#awaitingPong = false;
        continue;
      }
      this.#ctx.hub.metrics.centrifugoCommands.inc({ method: command.kind === 'request' ? command.method : 'unknown' });
      if (!this.#take()) {
        if (command.id > 0) this.#reply(errorJson(command.id, this.#counted(protocolError('tooManyRequests', `more than ${this.#ctx.hub.config.centrifugoCommandRate} commands per second (--centrifugo-command-rate)`))));
        continue;
      }
      this.#queue = this.#queue.then(() => this.#handle(command)).catch((error: unknown) => this.#failed(error));
    }
  }

  /** A bug while handling a command: logged, and this connection alone is ended (3004), never the process. */
  #failed(error: unknown): void {
    this.#ctx.hub.log.error({ conn: this.id, err: error instanceof Error ? { message: error.message, stack: error.stack } : String(error) }, 'centrifugo: handling a command failed; disconnected');
    this.disconnect('error');
  }

  /** Ends the connection gracefully, with `advice` (default: the one `reason` calls for). */
  disconnect(reason: EndReason, advice?: Disconnect): void {
    if (advice !== undefined) this.#advice = advice;
    this.#outlet.close(reason);
  }

  /** Writes a push (join, leave, unsubscribe) to the client. */
  push(line: string): void {
    if (this.state === 'connected') this.#outlet.write(framed([line], this.#framing), 0);
  }

  /** Unsubscribes a channel from the server side (the API): the client is told with `code` (2000: for good). */
  unsubscribe(channel: string, code = 2000, reason = 'server unsubscribe'): void {
    const entry = this.channels.get(channel);
    if (entry === undefined) return;
    this.#drop(entry);
    if (entry.state === 'subscribed') this.push(pushJson(channel, 'unsubscribe', { code, reason }));
  }

  /** The client's information, for presence, join and leave. */
  clientInfo(): ClientInfo {
    return { client: this.id, user: this.user, conn_info: rawOf(this.grant?.payload) };
  }

  /** The channels subscribed with join and leave pushes. */
  *joinLeaveChannels(): Iterable<string> {
    for (const entry of this.channels.values()) if (entry.joinLeave && entry.state === 'subscribed') yield entry.channel;
  }

  /** Shared heartbeat: a ping every interval; a ping still unanswered when the next is due ends the connection. */
  heartbeat(tick: number): void {
    if (this.state !== 'connected' || tick - this.#pingTick < 2) return;
    if (this.#awaitingPong) {
      this.disconnect('no-pong');
      return;
    }
    this.#pingTick = tick;
    this.#awaitingPong = true;
    this.#outlet.write(framed([PING_JSON], this.#framing), 0);
  }

  /** Takes one command from the rate's bucket; a flood (refusals past the rate in one second) ends the connection. */
  #take(): boolean {
    const rate = this.#ctx.hub.config.centrifugoCommandRate;
    if (rate <= 0) return true;
    const now = Date.now();
    this.#tokens = Math.min(rate, this.#tokens + ((now - this.#refilled) / 1000) * rate);
    this.#refilled = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    if (now - this.#refusedSince > 1000) {
      this.#refused = 0;
      this.#refusedSince = now;
    }
    if (++this.#refused > Math.max(rate, 10)) this.disconnect('too-many-requests');
    return false;
  }

  async #handle(command: Command): Promise<void> {
    if (this.#over()) return;
    if (command.kind === 'pong') return;
    if (command.kind === 'unknown') {
      if (command.id > 0) this.#reply(errorJson(command.id, this.#counted(new CentrifugoError('methodNotFound', `no method this protocol has in the command (fields: ${command.fields.map((f) => JSON.stringify(f)).join(', ') || 'none'})`).error)));
      return;
    }
    const { id, method, params } = command;
    if (this.state === 'connecting' && method !== 'connect') {
      this.#ctx.hub.log.info({ conn: this.id, method }, 'centrifugo: a command before connect; disconnected (bad request)');
      this.disconnect('bad-request');
      return;
    }
    try {
      const result = await this.#run(method, id, params);
      if (result !== undefined && id > 0 && !this.#over()) this.#reply(replyJson(id, method, result));
    } catch (error) {
      const reply = toProtocolError(error);
      if (reply.code === 100) this.#ctx.hub.log.warn({ conn: this.id, method, err: error instanceof Error ? error.message : String(error) }, 'centrifugo: a command failed');
      if (id > 0 && !this.#over()) this.#reply(errorJson(id, this.#counted(reply)));
    }
  }

  /** Runs a command; resolves with its result (`undefined`: no reply, or one already written). */
  #run(method: Method, id: number, params: Record<string, unknown>): Promise<unknown> | unknown {
    switch (method) {
      case 'connect':
        return this.#connect(id, params);
      case 'subscribe':
        return this.#subscribe(id, params);
      case 'unsubscribe': {
        const entry = this.channels.get(channelOf(params));
        if (entry !== undefined) this.#drop(entry);
        return {};
      }
      case 'publish':
        return this.#publish(params);
      case 'presence':
        return this.#presence(params, false);
      case 'presence_stats':
        return this.#presence(params, true);
      case 'history':
        return this.#history(params);
      case 'ping':
        return {};
      case 'send':
        // An asynchronous message to the application: ssehub has no application to hand it to.
        return undefined;
      case 'rpc':
        throw new CentrifugoError('notAvailable', 'ssehub has no RPC handler (publish to a topic your backend subscribes to instead)');
      case 'refresh':
        return this.#refresh(params);
      case 'sub_refresh':
        return this.#subRefresh(params);
    }
  }

  async #connect(id: number, params: Record<string, unknown>): Promise<unknown> {
    if (this.state !== 'connecting') {
      this.#ctx.hub.log.info({ conn: this.id }, 'centrifugo: connect sent twice; disconnected (bad request)');
      this.disconnect('bad-request');
      return undefined;
    }
    const config = this.#ctx.hub.config;
    const token = params.token;
    if (token !== undefined && typeof token !== 'string') throw new CentrifugoError('badRequest', '"token" must be a string');
    if (token === undefined || token === '') {
      if (!config.anonymous) {
        this.#reply(errorJson(id, this.#counted(new CentrifugoError('unauthorized', 'a connection token is required (the "token" field): this hub does not allow anonymous clients (--anonymous)').error)));
        this.disconnect('unauthorized');
        return undefined;
      }
    } else {
      const verified = await this.#verify(token, id);
      if (verified === undefined) return undefined;
      this.grant = verified.grant;
      this.publish = verified.publish;
    }
    if (this.#over()) return undefined;
    this.state = 'connected';
    clearTimeout(this.#stale);
    this.#setExpiry();
    if (config.centrifugoPing > 0) {
      this.#heartbeat = sharedHeartbeat(config.centrifugoPing);
      this.#pingTick = this.#heartbeat.ticks;
      this.#heartbeat.add(this);
    }
    const ttl = this.#ttl(this.grant);
    return {
      client: this.id,
      version: this.#ctx.version,
      expires: ttl === undefined ? undefined : true,
      ttl,
      ping: config.centrifugoPing > 0 ? Math.max(1, Math.round(config.centrifugoPing / 1000)) : undefined,
      pong: config.centrifugoPing > 0 ? true : undefined,
      session: this.emulationId,
      node: this.emulationId === undefined ? undefined : this.#ctx.hub.node,
    };
  }

  /**
   * Verifies a connection token like every ssehub token (same keys, JWKS, access tokens). An
   * expired one is answered 109 (the SDK gets a new one and connects again); any other problem
   * ends the connection (3500, invalid token). Resolves `undefined` when it answered.
   */
  async #verify(token: string, id: number): Promise<{ grant: Grant; publish: Grant | undefined } | undefined> {
    if (expired(token)) {
      this.#reply(errorJson(id, this.#counted(new CentrifugoError('tokenExpired').error)));
      return undefined;
    }
    try {
      return await verifyToken(this.#ctx, token, this.#audiences);
    } catch (error) {
      if (!(error instanceof InvalidTokenError)) throw error;
      this.#ctx.hub.log.info({ conn: this.id, err: error.message }, 'centrifugo: invalid connection token; disconnected');
      this.disconnect('unauthorized');
      return undefined;
    }
  }

  /** Seconds until the token expires, or `undefined`. */
  #ttl(grant: Grant | undefined): number | undefined {
    if (grant?.expiresAt === undefined) return undefined;
    return Math.max(1, Math.floor((grant.expiresAt - Date.now()) / 1000));
  }

  #setExpiry(): void {
    clearTimeout(this.#expiry);
    const expiresAt = this.grant?.expiresAt;
    if (expiresAt === undefined) return;
    this.#expiry = setTimeout(() => this.disconnect('token-expired'), untilExpired(expiresAt));
  }

  async #refresh(params: Record<string, unknown>): Promise<unknown> {
    const token = params.token;
    if (typeof token !== 'string' || token === '') throw new CentrifugoError('badRequest', 'refresh needs a "token"');
    if (expired(token)) throw new CentrifugoError('tokenExpired');
    const verified = await verifyToken(this.#ctx, token, this.#audiences);
    if ((verified.grant.subject ?? '') !== this.user) throw new CentrifugoError('permissionDenied', 'the new token is for another user ("sub") than the connection');
    this.grant = verified.grant;
    this.publish = verified.publish;
    this.#setExpiry();
    const ttl = this.#ttl(this.grant);
    return { client: this.id, version: this.#ctx.version, expires: ttl === undefined ? undefined : true, ttl };
  }

  async #subscribe(id: number, params: Record<string, unknown>): Promise<unknown> {
    const ctx = this.#ctx;
    const config = ctx.hub.config;
    const channel = channelOf(params);
    if (this.channels.has(channel)) throw new CentrifugoError('alreadySubscribed', `already subscribed to "${channel}"`);
    if (config.centrifugoMaxSubscriptions > 0 && this.channels.size >= config.centrifugoMaxSubscriptions) {
      throw new CentrifugoError('limitExceeded', `a connection may subscribe to at most ${config.centrifugoMaxSubscriptions} channels (--centrifugo-max-subscriptions)`);
    }
    const recover = params.recover === true;
    const offset = params.offset ?? 0;
    const epoch = params.epoch ?? '';
    const flag = params.flag ?? 0;
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw new CentrifugoError('badRequest', '"offset" must be a non-negative integer');
    if (typeof epoch !== 'string') throw new CentrifugoError('badRequest', '"epoch" must be a string');
    if (typeof flag !== 'number') throw new CentrifugoError('badRequest', '"flag" must be a number');
    // A client coming from SSE resumes after the last update ID it saw (an ssehub extension).
    const data = params.data;
    const lastEventId = typeof data === 'object' && data !== null && typeof (data as Record<string, unknown>).lastEventId === 'string' ? ((data as Record<string, unknown>).lastEventId as string) : undefined;
    let grant = this.grant;
    let subscriptionExpiry: number | undefined;
    if (typeof params.token === 'string' && params.token !== '') {
      // A subscription token: its mercure.subscribe adds to the connection's, for this channel.
      if (expired(params.token)) throw new CentrifugoError('tokenExpired');
      const sub = await verifyToken(ctx, params.token, this.#audiences);
      grant = { ...(this.grant ?? sub.grant), subscribe: [...(this.grant?.subscribe ?? []), ...(sub.grant.subscribe ?? [])] };
      subscriptionExpiry = sub.grant.expiresAt;
    }
    const entry: Channel = { channel, state: 'subscribing', subscription: undefined, cancelled: false, joinLeave: params.join_leave === true && config.centrifugoJoinLeave, expiry: undefined };
    this.channels.set(channel, entry);
    const positions = ctx.positions;
    const framing = this.#framing;
    const encoder = ctx.encoders.acquire(channel, framing);
    let subscription: Subscription;
    try {
      const current = await positions.epoch();
      const canRecover = recover && positions.recoverable && lastEventId === undefined && (epoch === '' || epoch === current);
      subscription = await ctx.hub.join({
        connection: this.connection,
        selectors: [{ kind: 'exact', value: channel }],
        grant,
        address: this.connection.address,
        protocol: 'centrifugo',
        transport: this.transport,
        encoder,
        lastEventId,
        afterSeq: canRecover ? positions.seqOfOffset(offset) : undefined,
        wantsHead: true,
        replay: false,
        open: (resume) => {
          const recovered = resume.covered === true;
          if (recover && !recovered && (flag & REJECT_UNRECOVERED) !== 0) throw new CentrifugoError('unrecoverablePosition');
          const publications = recovered ? resume.updates.map((u) => new Raw(publicationJson(u, positions))) : [];
          const ttl = subscriptionExpiry === undefined ? undefined : Math.max(1, Math.floor((subscriptionExpiry - Date.now()) / 1000));
          const result = {
            expires: ttl === undefined ? undefined : true,
            ttl,
            recoverable: positions.recoverable ? true : undefined,
            epoch: current,
            publications: publications.length > 0 ? publications : undefined,
            recovered: recovered ? true : undefined,
            offset: resume.head > 0n ? positions.offsetOf(resume.head) : undefined,
            was_recovering: recover ? true : undefined,
          };
          this.#outlet.write(framed([replyJson(id, 'subscribe', result)], framing), publications.length);
          return this.#outlet;
        },
      });
    } catch (error) {
      ctx.encoders.release(channel, framing);
      if (this.channels.get(channel) === entry) this.channels.delete(channel);
      throw error;
    }
    if (entry.cancelled || this.#over()) {
      subscription.end('unsubscribed');
      return undefined;
    }
    entry.subscription = subscription;
    entry.state = 'subscribed';
    if (subscriptionExpiry !== undefined) {
      entry.expiry = setTimeout(() => this.disconnect('token-expired', DISCONNECTS.subscriptionExpired), untilExpired(subscriptionExpiry));
    }
    return undefined;
  }

  async #subRefresh(params: Record<string, unknown>): Promise<unknown> {
    const entry = this.channels.get(channelOf(params));
    if (entry === undefined || entry.state !== 'subscribed') throw new CentrifugoError('permissionDenied', 'not subscribed to this channel');
    const token = params.token;
    if (typeof token !== 'string' || token === '') throw new CentrifugoError('badRequest', 'sub_refresh needs a "token"');
    if (expired(token)) throw new CentrifugoError('tokenExpired');
    const { grant } = await verifyToken(this.#ctx, token, this.#audiences);
    clearTimeout(entry.expiry);
    entry.expiry = undefined;
    if (grant.expiresAt === undefined) return {};
    const expiresAt = grant.expiresAt;
    entry.expiry = setTimeout(() => this.disconnect('token-expired', DISCONNECTS.subscriptionExpired), untilExpired(expiresAt));
    return { expires: true, ttl: Math.max(1, Math.floor((expiresAt - Date.now()) / 1000)) };
  }

  /** Ends one channel subscription (an unsubscribe of either side). */
  #drop(entry: Channel): void {
    this.channels.delete(entry.channel);
    clearTimeout(entry.expiry);
    if (entry.subscription === undefined) {
      entry.cancelled = true;
      return;
    }
    entry.subscription.end('unsubscribed');
    this.#ctx.encoders.release(entry.channel, this.#framing);
  }

  async #publish(params: Record<string, unknown>): Promise<unknown> {
    const ctx = this.#ctx;
    const channel = channelOf(params);
    if (!('data' in params) || params.data === undefined) throw new CentrifugoError('badRequest', 'publish needs "data"');
    if (this.publish === undefined) {
      throw new CentrifugoError('permissionDenied', this.grant === undefined ? 'an anonymous connection may not publish' : 'the connection token may not publish: it has no "mercure.publish" claim, or the publisher key does not verify it');
    }
    assertMayPublish(this.publish, [channel]);
    if (isReservedTopic(channel)) throw new CentrifugoError('permissionDenied', `channel "${channel}" is inside /.well-known/mercure, which is reserved for the hub`);
    if (ctx.rateLimiter !== undefined) {
      const decision = ctx.rateLimiter.take(this.user !== '' ? `sub:${this.user}` : `addr:${this.connection.address}`);
      if (!decision.allowed) throw new CentrifugoError('tooManyRequests', `publish rate limit exceeded (--publish-rate); retry in ${decision.retryAfter}s`);
    }
    const text = dataOfPublication(params.data);
    if (Buffer.byteLength(text) > ctx.hub.config.maxBody) throw new CentrifugoError('limitExceeded', `publication data larger than ${ctx.hub.config.maxBody} bytes (--max-body)`);
    const trace = ctx.hub.tracing?.publish({});
    const started = performance.now();
    try {
      const stored = await ctx.hub.publish({ topics: [channel], data: text });
      trace?.done(stored, performance.now() - started);
    } catch (error) {
      trace?.done(undefined, performance.now() - started, error);
      throw error;
    }
    return {};
  }

  /** Whether this client may see who is subscribed to `channel`: its token lets it read the channel's private updates. */
  #mayReadPresence(channel: string): boolean {
    return matchesAny([channel], grantMatchers(this.grant?.subscribe, 'mercure.subscribe'));
  }

  async #presence(params: Record<string, unknown>, stats: boolean): Promise<unknown> {
    const channel = channelOf(params);
    if (!this.#mayReadPresence(channel)) throw new CentrifugoError('permissionDenied', `the connection token's "mercure.subscribe" does not allow channel "${channel}", so its presence is not shown`);
    return presenceOf(this.#ctx, channel, stats);
  }

  async #history(params: Record<string, unknown>): Promise<unknown> {
    const channel = channelOf(params);
    const privateMatchers = grantMatchers(this.grant?.subscribe, 'mercure.subscribe');
    return historyOf(this.#ctx, channel, params, (u) => u.topics.includes(channel) && (!u.private || matchesAny(u.topics, privateMatchers)));
  }

  #reply(line: string): void {
    this.#outlet.write(framed([line], this.#framing), 0);
  }

  #counted(error: ProtocolError): ProtocolError {
    this.#ctx.hub.metrics.centrifugoErrors.inc({ code: String(error.code) });
    return error;
  }

  /** The connection begins to end: the client is told why, the way its transport can. */
  #ending(reason: EndReason, graceful: boolean): void {
    const advice = this.#advice ?? disconnectOf(reason);
    if (this.#webSocket !== undefined) {
      this.#webSocket.disconnect = advice;
      return;
    }
    // Over emulation, a Disconnect push (the stream ends after it); a cut stream tells nothing.
    if (graceful) this.#outlet.write(framed([pushJson(undefined, 'disconnect', { code: advice.code, reason: advice.reason, reconnect: reconnects(advice.code) })], this.#framing), 0);
  }

  #closed(): void {
    this.state = 'closed';
    clearTimeout(this.#stale);
    clearTimeout(this.#expiry);
    this.#heartbeat?.delete(this);
    for (const entry of this.channels.values()) {
      clearTimeout(entry.expiry);
      if (entry.subscription !== undefined) this.#ctx.encoders.release(entry.channel, this.#framing);
      else entry.cancelled = true;
    }
    this.channels.clear();
    this.#ctx.sessions.delete(this);
  }
}

/** A new client ID. */
export function newClientId(): string {
  return randomUUID();
}

/** The channel of a command, checked. */
function channelOf(params: Record<string, unknown>): string {
  const channel = params.channel;
  if (typeof channel !== 'string' || channel === '') throw new CentrifugoError('badRequest', '"channel" must be a non-empty string');
  if (channel.length > MAX_CHANNEL) throw new CentrifugoError('badRequest', `a channel is at most ${MAX_CHANNEL} characters long`);
  return channel;
}

/** Whether a token's `exp` has passed (read without verifying: an expired token is refused either way). */
function expired(token: string): boolean {
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === 'number' && exp * 1000 <= Date.now();
  } catch {
    return false;
  }
}

/**
 * Verifies a connection (or subscription) token with the subscriber key, as an SSE subscriber's
 * is; where it may publish comes from its `mercure.publish` only when the publisher key verifies
 * it too (with separate keys, a subscriber-signed token cannot publish). Without a subscriber key
 * (anonymous subscribers only), the publisher key verifies it. Throws InvalidTokenError.
 */
export async function verifyToken(ctx: GatewayContext, token: string, audiences: readonly string[]): Promise<{ grant: Grant; publish: Grant | undefined }> {
  const context = { audiences };
  const asPublisher = await ctx.publisherVerifier.verify(token, context).catch((error: unknown) => error);
  if (ctx.subscriberVerifier !== undefined) {
    const grant = await ctx.subscriberVerifier.verify(token, context);
    return { grant, publish: asPublisher instanceof Error ? undefined : (asPublisher as Grant) };
  }
  if (asPublisher instanceof Error) throw asPublisher;
  return { grant: asPublisher as Grant, publish: asPublisher as Grant };
}

/** Presence of a channel across the cluster: ClientInfo by client, or the counts (`stats`). */
export async function presenceOf(ctx: GatewayContext, channel: string, stats: boolean): Promise<unknown> {
  const entries = await ctx.hub.listSubscriptions({ topic: channel });
  const clients = new Map<string, ClientInfo>();
  for (const e of entries) {
    const client = e.connection ?? e.subscriber;
    clients.set(client, { client, user: e.subject ?? '', conn_info: rawOf(e.payload) });
  }
  if (stats) return { num_clients: clients.size, num_users: new Set([...clients.values()].map((c) => c.user)).size };
  return { presence: Object.fromEntries(clients) };
}

/**
 * History of a channel (`filter`: what the asker may read): `limit` publications (0: none, only
 * the position; -1: all), oldest first or newest first (`reverse`), after `since` if given.
 */
export async function historyOf(ctx: GatewayContext, channel: string, params: Record<string, unknown>, filter: (u: Update) => boolean): Promise<unknown> {
  const { positions, hub } = ctx;
  const limit = params.limit ?? 0;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < -1) throw new CentrifugoError('badRequest', '"limit" must be an integer, -1 for all');
  const reverse = params.reverse === true;
  const since = params.since;
  const epoch = await positions.epoch();
  let updates: readonly Update[];
  let head: bigint;
  if (since !== undefined && since !== null) {
    if (typeof since !== 'object') throw new CentrifugoError('badRequest', '"since" must be an object {offset, epoch}');
    const { offset = 0, epoch: sinceEpoch = '' } = since as Record<string, unknown>;
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0 || typeof sinceEpoch !== 'string') throw new CentrifugoError('badRequest', '"since" must be {offset: integer, epoch: string}');
    if (reverse) throw new CentrifugoError('badRequest', '"reverse" with "since" is not supported');
    if (sinceEpoch !== '' && sinceEpoch !== epoch) throw new CentrifugoError('unrecoverablePosition', `epoch "${sinceEpoch}" is not the current one ("${epoch}"): history was lost since`);
    const result = await hub.historyAfter(positions.seqOfOffset(offset), filter);
    if (!result.found) throw new CentrifugoError('unrecoverablePosition', 'publications after that offset are no longer all in history');
    updates = result.updates;
    head = result.head;
  } else if (limit === 0) {
    updates = [];
    head = await hub.head();
  } else {
    const result = await hub.history('earliest', filter);
    updates = result.updates;
    head = result.head;
  }
  let list = reverse ? [...updates].reverse() : updates;
  if (limit >= 0) list = list.slice(0, limit);
  return { publications: list.map((u) => new Raw(publicationJson(u, positions))), epoch, offset: head > 0n ? positions.offsetOf(head) : undefined };
}
