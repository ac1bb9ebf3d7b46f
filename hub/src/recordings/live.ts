import type { NatsConnection } from "@nats-io/transport-node";
import { RecordingEvent } from "../../../lib/recording/chain.js";
import { sessionSubjects } from "../../../lib/recording/nats.js";

/** Events of running sessions as they are recorded, for `GET /sessions/:id/live`. */
export interface LiveFeed {
  /** Hand on an event recorded in this process (embedded mode). */
  publish(event: RecordingEvent): void;
  /** Call `onEvent` for each new event of the session until the returned function is called. */
  subscribe(sessionId: string, onEvent: (event: RecordingEvent) => void): () => void;
}

/** Embedded mode: the relay shares this process, so its events are handed on in memory. */
export class LocalLiveFeed implements LiveFeed {
  private readonly listeners = new Map<string, Set<(event: RecordingEvent) => void>>();

  publish(event: RecordingEvent): void {
    const set = this.listeners.get(event.sessionId);
    if (set) for (const l of set) l(event);
  }

  subscribe(sessionId: string, onEvent: (event: RecordingEvent) => void): () => void {
    let set = this.listeners.get(sessionId);
    if (!set) this.listeners.set(sessionId, (set = new Set()));
    set.add(onEvent);
    return () => {
      set.delete(onEvent);
      if (set.size === 0) this.listeners.delete(sessionId);
    };
  }
}

/**
 * Cluster mode: relays publish every event on the session's JetStream subject, and a plain NATS
 * subscription on that subject sees them as they arrive, whichever hub serves the viewer.
 */
export class NatsLiveFeed implements LiveFeed {
  constructor(private readonly nc: NatsConnection) {}

  publish(): void {}

  subscribe(sessionId: string, onEvent: (event: RecordingEvent) => void): () => void {
    const sub = this.nc.subscribe(sessionSubjects(sessionId), {
      callback: (err, msg) => {
        if (err) return;
        try {
          onEvent(RecordingEvent.decode(msg.data));
        } catch {
          // Malformed messages are ingest's to dead-letter; the live view skips them.
        }
      },
    });
    return () => sub.unsubscribe();
  }
}
