import assert from "node:assert/strict";
import { VigilError } from "../../../lib/errors.js";
import { RelayRegistry } from "./registry.js";

function relay(registry: RelayRegistry, id: string, connections: string[]) {
  return registry.online({
    id,
    segment: "s",
    version: "t",
    capabilities: [],
    connections: connections.map((name) => ({ name, type: "tcp", labels: {}, sshHostKey: "" })),
    publicKey: Buffer.alloc(32),
    send: () => {},
  });
}

describe("relay registry routing", () => {
  it("routes to the least-loaded online relay serving the connection", () => {
    const reg = new RelayRegistry();
    const a = relay(reg, "a", ["db"]);
    const b = relay(reg, "b", ["db"]);
    a.activeSessions = 3;
    assert.equal(reg.route("db").id, "b");
    b.activeSessions = 5;
    assert.equal(reg.route("db").id, "a");
  });

  it("skips draining, offline and excluded relays", () => {
    const reg = new RelayRegistry();
    const a = relay(reg, "a", ["db"]);
    relay(reg, "b", ["db"]);
    reg.setStatus(a, "draining");
    assert.equal(reg.route("db").id, "b");
    assert.throws(
      () => reg.route("db", new Set(["b"])),
      (e: VigilError) => e.code === "relay_unavailable",
    );
  });

  it("tells an unknown connection from one whose relays are all down", () => {
    const reg = new RelayRegistry();
    const a = relay(reg, "a", ["db"]);
    assert.throws(
      () => reg.route("nope"),
      (e: VigilError) => e.code === "unknown_connection",
    );
    reg.setStatus(a, "offline");
    assert.throws(
      () => reg.route("db"),
      (e: VigilError) => e.code === "relay_unavailable",
    );
    assert.equal(reg.connections()[0]?.available, false);
  });

  it("ignores status changes from a stale record after the relay reconnected", () => {
    const reg = new RelayRegistry();
    const old = relay(reg, "a", ["db"]);
    relay(reg, "a", ["db"]);
    reg.setStatus(old, "offline");
    assert.equal(reg.route("db").id, "a");
  });
});
