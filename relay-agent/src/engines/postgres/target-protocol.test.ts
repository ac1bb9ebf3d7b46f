// The relay's login against scripted fake servers: the protocol corners a real PostgreSQL does not
// show on demand (injected bytes, forged SCRAM, unsupported methods, a silent server).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { VigilError } from "../../../../lib/errors.js";
import { SCRAM_SHA_256 } from "./scram.js";
import { connectTarget, type ConnectTargetOptions } from "./target.js";

const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cstring = (s: string): Buffer => Buffer.from(`${s}\0`);

/** A backend message: type byte, int32 length (itself included), body. */
function backend(type: string, ...body: Buffer[]): Buffer {
  const payload = Buffer.concat(body);
  return Buffer.concat([Buffer.from(type), int32(4 + payload.length), payload]);
}

const authentication = (code: number, ...rest: Buffer[]) => backend("R", int32(code), ...rest);
const readyForQuery = backend("Z", Buffer.from("I"));

/** The fake server's view of what the relay sends. */
class Frontend {
  private buffered = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private ended = false;

  constructor(socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake?.();
    });
    socket.on("close", () => {
      this.ended = true;
      this.wake?.();
    });
  }

  /** A length-prefixed packet without a type byte: SSLRequest, StartupMessage, CancelRequest. */
  async packet(): Promise<Buffer> {
    await this.fill(4);
    const length = this.buffered.readInt32BE(0);
    await this.fill(length);
    return this.take(length).subarray(4);
  }

  async message(): Promise<{ type: string; body: Buffer }> {
    await this.fill(5);
    const length = this.buffered.readInt32BE(1);
    await this.fill(1 + length);
    const whole = this.take(1 + length);
    return { type: String.fromCharCode(whole[0]!), body: whole.subarray(5) };
  }

  /** Resolves when the relay closed the connection without sending anything more. */
  async closedWithoutMore(): Promise<void> {
    while (!this.ended) await new Promise<void>((resolve) => (this.wake = resolve));
    assert.equal(this.buffered.length, 0, "the relay sent more before closing");
  }

  private async fill(bytes: number): Promise<void> {
    while (this.buffered.length < bytes) {
      if (this.ended) throw new Error("the relay closed the connection");
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private take(bytes: number): Buffer {
    const head = this.buffered.subarray(0, bytes);
    this.buffered = this.buffered.subarray(bytes);
    return head;
  }
}

interface FakeTarget {
  address: string;
  /** The script's outcome: rejects when one of its assertions failed. */
  done: Promise<void>;
  close(): void;
}

/** Serves one connection with `script`. */
async function fakeTarget(
  script: (socket: Socket, frontend: Frontend) => Promise<void>,
  host = "127.0.0.1",
): Promise<FakeTarget> {
  let finish!: { resolve(): void; reject(error: unknown): void };
  const done = new Promise<void>((resolve, reject) => (finish = { resolve, reject }));
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on("error", () => undefined);
    script(socket, new Frontend(socket)).then(finish.resolve, finish.reject);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  return {
    address: `${host}:${port}`,
    done,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** Parses a StartupMessage body into its name/value pairs, in order. */
function startupPairs(packet: Buffer): [string, string][] {
  assert.equal(packet.readInt32BE(0), 196608, "protocol 3.0");
  const strings = packet.subarray(4).toString("utf8").split("\0");
  const pairs: [string, string][] = [];
  for (let i = 0; strings[i]; i += 2) pairs.push([strings[i]!, strings[i + 1]!]);
  return pairs;
}

const credentials = { user: "relay_user", password: "relay-pw-0123", sslmode: "disable" as const };

/** Expects the login to fail with `code` and `message`, and the fake server's script to pass. */
async function loginFails(
  target: FakeTarget,
  code: VigilError["code"],
  message: RegExp,
  more: Partial<ConnectTargetOptions> = {},
): Promise<VigilError> {
  try {
    const error = await connectTarget({ address: target.address, credentials, database: "app", ...more }).then(
      () => assert.fail("the login succeeded"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof VigilError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    assert.doesNotMatch(error.message, /relay_user|relay-pw/);
    await target.done;
    return error;
  } finally {
    target.close();
  }
}

describe("postgres target login, protocol corners", () => {
  it("logs in as the relay's user and database whatever the client's parameters say, and keeps bytes past ReadyForQuery", async () => {
    const extra = backend("N", cstring("SNOTICE"), cstring("Mafter ready"), Buffer.from([0]));
    const secret = randomBytes(4);
    const target = await fakeTarget(async (socket, frontend) => {
      const pairs = startupPairs(await frontend.packet());
      assert.deepEqual(pairs, [
        ["user", "relay_user"],
        ["application_name", "psql"],
        ["database", "app"],
      ]);
      const status = backend("S", cstring("server_version"), cstring("15.0"));
      socket.write(Buffer.concat([authentication(0), status, backend("K", int32(4242), secret), readyForQuery, extra]));
    });
    try {
      const params = { user: "someone_else", application_name: "psql", database: "other" };
      const conn = await connectTarget({ address: target.address, credentials, database: "app", params });
      conn.socket.destroy();
      await target.done;
      assert.deepEqual(conn.parameters, { server_version: "15.0" });
      assert.deepEqual(conn.backendKey, { pid: 4242, secret });
      assert.deepEqual(conn.leftover, extra);
    } finally {
      target.close();
    }
  });

  it("refuses a startup parameter with a NUL byte, which would smuggle in more parameters", async () => {
    const target = await fakeTarget(async (_socket, frontend) => frontend.closedWithoutMore());
    await loginFails(target, "bad_request", /NUL/, { params: { application_name: "x\0user\0postgres" } });
  });

  it("refuses bytes that arrive with the answer to SSLRequest, before TLS (CVE-2021-23222)", async () => {
    const target = await fakeTarget(async (socket, frontend) => {
      assert.equal((await frontend.packet()).readInt32BE(0), 80877103);
      socket.write(Buffer.concat([Buffer.from("S"), authentication(0), readyForQuery]));
      await frontend.closedWithoutMore();
    });
    await loginFails(target, "protocol_error", /sent data after its answer to SSLRequest/, {
      credentials: { ...credentials, sslmode: "require" },
    });
  });

  it("picks SCRAM-SHA-256 next to -PLUS, without channel binding, and rejects a forged server signature", async () => {
    const target = await fakeTarget(async (socket, frontend) => {
      await frontend.packet();
      socket.write(authentication(10, cstring(`${SCRAM_SHA_256}-PLUS`), cstring(SCRAM_SHA_256), Buffer.from([0])));
      const initial = await frontend.message();
      assert.equal(initial.type, "p");
      const mechanism = initial.body.subarray(0, initial.body.indexOf(0)).toString();
      assert.equal(mechanism, SCRAM_SHA_256);
      const clientFirst = initial.body.subarray(mechanism.length + 5).toString();
      assert.match(clientFirst, /^n,,n=,r=/);
      const nonce = `${clientFirst.slice("n,,n=,r=".length)}server-part`;
      const salt = randomBytes(16).toString("base64");
      socket.write(authentication(11, Buffer.from(`r=${nonce},s=${salt},i=4096`)));
      const final = await frontend.message();
      assert.match(final.body.toString(), new RegExp(`^c=biws,r=${nonce.replace(/[+/]/g, "\\$&")},p=`));
      socket.write(authentication(12, Buffer.from(`v=${randomBytes(32).toString("base64")}`)));
      await frontend.closedWithoutMore();
    });
    await loginFails(target, "protocol_error", /SCRAM .* signature is wrong/);
  });

  it("does not take AuthenticationOk before the server proved itself in SCRAM", async () => {
    const target = await fakeTarget(async (socket, frontend) => {
      await frontend.packet();
      socket.write(authentication(10, cstring(SCRAM_SHA_256), Buffer.from([0])));
      await frontend.message();
      socket.write(Buffer.concat([authentication(0), readyForQuery]));
      await frontend.closedWithoutMore();
    });
    await loginFails(target, "protocol_error", /AuthenticationOk before SCRAM completed/);
  });

  it("does not take ReadyForQuery before authentication", async () => {
    const target = await fakeTarget(async (socket, frontend) => {
      await frontend.packet();
      socket.write(readyForQuery);
      await frontend.closedWithoutMore();
    });
    await loginFails(target, "protocol_error", /ReadyForQuery before authentication completed/);
  });

  it("does not send a cleartext password over plain TCP to a non-loopback address", async function () {
    const host = Object.values(networkInterfaces())
      .flat()
      .find((nic) => nic && nic.family === "IPv4" && !nic.internal)?.address;
    if (!host) this.skip(); // only loopback here: nothing to test
    const target = await fakeTarget(async (socket, frontend) => {
      await frontend.packet();
      socket.write(authentication(3));
      await frontend.closedWithoutMore();
    }, host);
    const error = await loginFails(
      target,
      "target_refused",
      /asks for the password in cleartext over an unencrypted connection/,
    );
    assert.equal(error.nativeCode, "08004");
  });

  it("refuses GSSAPI with a clear message", async () => {
    const target = await fakeTarget(async (socket, frontend) => {
      await frontend.packet();
      socket.write(authentication(7));
      await frontend.closedWithoutMore();
    });
    await loginFails(target, "target_refused", /asks for GSSAPI authentication, which the relay does not support/);
  });

  it("says a server that is not PostgreSQL breaks the protocol", async () => {
    const target = await fakeTarget(async (socket, frontend) => {
      await frontend.packet();
      socket.write("HTTP/1.1 400 Bad Request\r\n\r\n");
      await frontend.closedWithoutMore();
    });
    await loginFails(target, "protocol_error", /message 'H' claims \d+ bytes/);
  });

  it("gives up on a server that never answers", async () => {
    const target = await fakeTarget(async (_socket, frontend) => {
      await frontend.packet();
      await frontend.closedWithoutMore();
    });
    await loginFails(target, "target_unreachable", /^cannot reach 127\.0\.0\.1:\d+: no answer within 200 ms$/, {
      connectTimeoutMs: 200,
    });
  });
});
