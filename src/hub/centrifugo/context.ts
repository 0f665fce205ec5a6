/** What the Centrifugo front-end's parts share: the core, the token verifiers, positions, encoders and the live sessions. */
import type { HubContext } from '../mercure/context.js';
import type { Encoders } from './publication.js';
import type { Positions } from './positions.js';
import type { Session } from './session.js';

/** The sessions of this node, by client ID and by emulation session ID. */
export class Sessions {
  readonly #byClient = new Map<string, Session>();
  readonly #byEmulation = new Map<string, Session>();

  add(session: Session): void {
    this.#byClient.set(session.id, session);
    if (session.emulationId !== undefined) this.#byEmulation.set(session.emulationId, session);
  }

  delete(session: Session): void {
    this.#byClient.delete(session.id);
    if (session.emulationId !== undefined) this.#byEmulation.delete(session.emulationId);
  }

  /** The session of an emulation session ID. */
  byEmulation(id: string): Session | undefined {
    return this.#byEmulation.get(id);
  }

  [Symbol.iterator](): Iterator<Session> {
    return this.#byClient.values();
  }

  get size(): number {
    return this.#byClient.size;
  }
}

/** Shared by the Centrifugo front-end's handlers of one hub (the Mercure front-end's context, and more). */
export interface GatewayContext extends HubContext {
  positions: Positions;
  encoders: Encoders;
  sessions: Sessions;
  /** The hub's version, for connect replies and /api/info. */
  version: string;
}
