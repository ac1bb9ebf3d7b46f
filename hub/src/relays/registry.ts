import type { ConnectionInfo, ControlResponse } from "../../../proto/gen/vigil/v1/relay.js";
import { VigilError } from "../../../lib/errors.js";

export type RelayStatus = "online" | "draining" | "offline";

/** What the hub knows about one relay; the send function exists while its Control stream is up. */
export interface RelayRecord {
  id: string;
  segment: string;
  version: string;
  capabilities: string[];
  connections: ConnectionInfo[];
  /** The enrolled (pinned) Ed25519 key; tunnel attachments must be signed by it. */
  publicKey: Buffer;
  status: RelayStatus;
  connectedAt: Date;
  lastSeen: Date;
  /** Sessions the hub has routed to this relay and not yet seen end. */
  activeSessions: number;
  send?: (msg: ControlResponse) => void;
  /** Ends the relay's Control stream (heartbeat timeout, hub shutdown). */
  disconnect?: () => void;
}

/** Relay view for the API: no send function, plain dates. */
export interface RelaySummary {
  id: string;
  segment: string;
  version: string;
  status: RelayStatus;
  connections: { name: string; type: string; labels: Record<string, string> }[];
  connectedAt: string;
  lastSeen: string;
  activeSessions: number;
}

/** A connection as the fleet serves it: which relays and segments, and whether any of them is online. */
export interface FleetConnection {
  name: string;
  type: string;
  labels: Record<string, string>;
  relays: string[];
  segments: string[];
  available: boolean;
  /** Public SSH host keys of the relays serving an ssh connection (one per relay). */
  sshHostKeys: string[];
}

/** The hub's live map of relays: who is online, who serves which connection, where a session goes. */
export class RelayRegistry {
  private readonly relays = new Map<string, RelayRecord>();

  /** Register a freshly enrolled relay, replacing any older Control stream of the same relay. */
  online(record: Omit<RelayRecord, "status" | "activeSessions" | "lastSeen" | "connectedAt">): RelayRecord {
    const previous = this.relays.get(record.id);
    const now = new Date();
    const next: RelayRecord = {
      ...record,
      status: "online",
      connectedAt: now,
      lastSeen: now,
      activeSessions: previous?.status === "offline" ? 0 : (previous?.activeSessions ?? 0),
    };
    this.relays.set(record.id, next);
    return next;
  }

  get(id: string): RelayRecord | undefined {
    return this.relays.get(id);
  }

  seen(id: string): void {
    const r = this.relays.get(id);
    if (r) r.lastSeen = new Date();
  }

  setStatus(record: RelayRecord, status: RelayStatus): void {
    // A stale record (replaced by a newer Control stream of the same relay) changes nothing.
    if (this.relays.get(record.id) !== record) return;
    record.status = status;
    if (status === "offline") {
      delete record.send;
      delete record.disconnect;
    }
  }

  /** Relays whose last heartbeat is older than `maxAgeMs`. */
  stale(maxAgeMs: number, now = Date.now()): RelayRecord[] {
    return [...this.relays.values()].filter((r) => r.status !== "offline" && now - r.lastSeen.getTime() > maxAgeMs);
  }

  /**
   * Choose the relay for a new session: online (not draining), serving the connection, with the
   * fewest active sessions; ties broken at random so that equal relays share the load.
   */
  route(connection: string, exclude: ReadonlySet<string> = new Set()): RelayRecord {
    const serving = [...this.relays.values()].filter((r) => r.connections.some((c) => c.name === connection));
    if (serving.length === 0) throw new VigilError("unknown_connection", `no relay serves connection "${connection}"`);
    const healthy = serving.filter((r) => r.status === "online" && r.send && !exclude.has(r.id));
    if (healthy.length === 0) {
      throw new VigilError("relay_unavailable", `no relay serving "${connection}" is online`);
    }
    const least = Math.min(...healthy.map((r) => r.activeSessions));
    const best = healthy.filter((r) => r.activeSessions === least);
    return best[Math.floor(Math.random() * best.length)]!;
  }

  all(): RelayRecord[] {
    return [...this.relays.values()];
  }

  list(): RelaySummary[] {
    return [...this.relays.values()].map((r) => ({
      id: r.id,
      segment: r.segment,
      version: r.version,
      status: r.status,
      connections: r.connections.map((c) => ({ name: c.name, type: c.type, labels: c.labels })),
      connectedAt: r.connectedAt.toISOString(),
      lastSeen: r.lastSeen.toISOString(),
      activeSessions: r.activeSessions,
    }));
  }

  /** Connections known to the fleet, with the relays and segments that serve each. */
  connections(): FleetConnection[] {
    const byName = new Map<string, FleetConnection>();
    for (const r of this.relays.values()) {
      for (const c of r.connections) {
        const entry = byName.get(c.name) ?? {
          name: c.name,
          type: c.type,
          labels: c.labels,
          relays: [],
          segments: [],
          available: false,
          sshHostKeys: [],
        };
        entry.relays.push(r.id);
        if (!entry.segments.includes(r.segment)) entry.segments.push(r.segment);
        entry.available ||= r.status === "online";
        if (c.sshHostKey && !entry.sshHostKeys.includes(c.sshHostKey)) entry.sshHostKeys.push(c.sshHostKey);
        byName.set(c.name, entry);
      }
    }
    return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}
