// The core's presence over a store (here the one-node store, with a heartbeat a test can steer):
// which events it decides, once each, and what it does when its own lease had lapsed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { LocalPresenceStore, type LostNode, Presence, type PresenceEvent } from '../../src/hub/core/presence.js';

const log = pino({ level: 'silent' });

/** A one-node store whose next heartbeat can report lost nodes, or this node's lease as lapsed. */
class SteeredStore extends LocalPresenceStore {
  next: { renewed: boolean; lost: LostNode[] } | undefined;
  override async heartbeat(): Promise<{ renewed: boolean; lost: LostNode[] }> {
    const answer = this.next ?? { renewed: true, lost: [] };
    this.next = undefined;
    return answer;
  }
}

function presenceOn(store = new SteeredStore()): { presence: Presence; events: PresenceEvent[]; store: SteeredStore } {
  const presence = new Presence(store, { node: 'node-a', ttl: 300, vacateDelay: 50, log });
  const events: PresenceEvent[] = [];
  presence.on('event', (e) => events.push(e));
  return { presence, events, store };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const types = (events: PresenceEvent[]) => events.map((e) => `${e.type} ${'topic' in e ? e.topic : e.subscriber}`);
const info = { subject: 'alice', payload: undefined, protocol: 'sse' };

describe('presence', () => {
  it('announces a subscriber, and occupies each of its topics once however many subscribe', async () => {
    const { presence, events } = presenceOn();
    await presence.joined('s1', ['t1', 't2'], info);
    await presence.joined('s2', ['t1'], info);
    assert.deepEqual(types(events), ['subscriber.connected s1', 'topic.occupied t1', 'topic.occupied t2', 'subscriber.connected s2']);
    assert.equal((await presence.list({ topic: 't1' })).length, 2);
    await presence.close();
  });

  it('vacates a topic only after the delay, and not when a subscriber comes back within it', async () => {
    const { presence, events } = presenceOn();
    await presence.joined('s1', ['t1', 't2'], info);
    await presence.left('s1', 'client-closed');
    await presence.joined('s2', ['t1'], info);
    await until(() => events.some((e) => e.type === 'topic.vacated'), 't2 vacated');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(types(events.filter((e) => e.type.startsWith('topic.'))), ['topic.occupied t1', 'topic.occupied t2', 'topic.vacated t2']);
    const left = events.find((e) => e.type === 'subscriber.disconnected');
    assert.equal(left?.type === 'subscriber.disconnected' && left.reason, 'client-closed');
    await presence.close();
  });

  it('says nothing for a subscriber that never joined (it left during its replay)', async () => {
    const { presence, events } = presenceOn();
    await presence.left('never', 'client-closed');
    assert.deepEqual(events, []);
    await presence.close();
  });

  it('announces the subscribers of a lost node gone (node-lost) and vacates their topics', async () => {
    const { presence, events, store } = presenceOn();
    store.next = { renewed: true, lost: [{ node: 'node-b', entries: [{ subscriber: 'b1', topic: 'tb', node: 'node-b', subject: 'bob', protocol: 'sse', since: 0 }] }] };
    // Its occupancy was set when b1 joined on node-b.
    await store.transition('tb', 'vacated', 'occupied');
    await presence.start();
    await until(() => events.some((e) => e.type === 'topic.vacated'), 'tb vacated');
    assert.deepEqual(types(events), ['subscriber.disconnected b1', 'topic.vacated tb']);
    const gone = events[0];
    assert.ok(gone?.type === 'subscriber.disconnected' && gone.reason === 'node-lost' && gone.node === 'node-b');
    await presence.close();
  });

  it('puts its entries back and announces them again when its own lease had lapsed', async () => {
    const { presence, events, store } = presenceOn();
    await presence.start();
    await presence.joined('s1', ['t1'], info);
    // Another node claimed this one as lost: its entries and the topic's occupancy are gone.
    await store.remove('s1', ['t1']);
    await store.transition('t1', 'occupied', 'vacated');
    store.next = { renewed: false, lost: [] };
    await until(() => events.filter((e) => e.type === 'subscriber.connected').length === 2, 'the subscriber announced again');
    await until(() => events.filter((e) => e.type === 'topic.occupied').length === 2, 't1 occupied again');
    assert.equal((await presence.list()).length, 1);
    await presence.close();
  });

  it('writes again, on the next heartbeat, the changes of a batch the store did not answer: no ghost, each event once', async () => {
    class FailingStore extends SteeredStore {
      failures = 0;
      override async remove(subscriber: string, topics?: readonly string[]): Promise<void> {
        if (this.failures > 0) {
          this.failures--;
          throw new Error('no answer within 1000 ms');
        }
        return super.remove(subscriber, topics);
      }
    }
    const store = new FailingStore();
    const { presence, events } = presenceOn(store);
    await presence.start();
    await presence.joined('s1', ['t1'], info);
    await presence.joined('s2', ['t1'], info);
    store.failures = 1;
    await presence.left('s1', 'client-closed');
    // The remove failed: s1 is still in the store, and its leave was not told yet.
    assert.equal((await store.list({ subscriber: 's1' })).length, 1);
    assert.ok(!events.some((e) => e.type === 'subscriber.disconnected'));
    await until(() => events.some((e) => e.type === 'subscriber.disconnected'), 's1 written again and told');
    assert.deepEqual(await store.list({ subscriber: 's1' }), []);
    assert.equal((await store.list({ subscriber: 's2' })).length, 1);
    assert.deepEqual(types(events), ['subscriber.connected s1', 'topic.occupied t1', 'subscriber.connected s2', 'subscriber.disconnected s1']);
    await presence.close();
  });

  it('looks at topics waiting to be vacated when it closes, instead of leaving them occupied', async () => {
    const store = new SteeredStore();
    const presence = new Presence(store, { node: 'node-a', ttl: 300, vacateDelay: 60_000, log });
    const events: PresenceEvent[] = [];
    presence.on('event', (e) => events.push(e));
    await presence.joined('s1', ['t1'], info);
    await presence.left('s1', 'shutdown');
    await presence.close();
    assert.deepEqual(types(events), ['subscriber.connected s1', 'topic.occupied t1', 'subscriber.disconnected s1', 'topic.vacated t1']);
  });
});
