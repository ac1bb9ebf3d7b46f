import assert from "node:assert/strict";
import { dialableAddress, formatHostPort, parseHostPort } from "./address.js";

describe("addresses", () => {
  it("parses and formats host:port, IPv6 in brackets", () => {
    assert.deepEqual(parseHostPort("127.0.0.1:8010"), { host: "127.0.0.1", port: 8010 });
    assert.deepEqual(parseHostPort("[::1]:0"), { host: "::1", port: 0 });
    assert.equal(formatHostPort({ host: "::1", port: 5 }), "[::1]:5");
    assert.throws(() => parseHostPort("localhost"), /expected host:port/);
    assert.throws(() => parseHostPort("h:70000"), /out of range/);
  });

  it("dials a wildcard listener over loopback and leaves others alone", () => {
    assert.equal(dialableAddress("0.0.0.0:8010"), "127.0.0.1:8010");
    assert.equal(dialableAddress("[::]:8010"), "[::1]:8010");
    assert.equal(dialableAddress("10.1.2.3:8010"), "10.1.2.3:8010");
  });
});
