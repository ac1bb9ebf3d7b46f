import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import pg from "pg";
import { testServices } from "../../test/support/env.js";
import {
  B,
  BackendReader,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeDataRow,
  decodeErrorFields,
  decodeNotificationResponse,
  decodeParameterStatus,
  decodeReadyForQuery,
  decodeRowDescription,
  sslResponse,
} from "./backend.js";
import { FrontendReader, readStartupPacket, type FrontendMessage } from "./frontend.js";

// node-postgres talking to the shared PostgreSQL through a proxy that frames both directions with
// these readers and forwards `raw` unchanged: real SCRAM, extended queries, errors, notifications
// and multi-chunk messages, with every decoder run on what the real server sent.

interface Seen {
  frontend: FrontendMessage[];
  backend: { code: number; decoded: unknown }[];
  failures: unknown[];
}

const DECODERS: Record<number, (body: Buffer) => unknown> = {
  [B.RowDescription]: decodeRowDescription,
  [B.DataRow]: (body) => decodeDataRow(body).map((v) => v?.toString()),
  [B.CommandComplete]: decodeCommandComplete,
  [B.ReadyForQuery]: decodeReadyForQuery,
  [B.ErrorResponse]: decodeErrorFields,
  [B.NoticeResponse]: decodeErrorFields,
  [B.BackendKeyData]: decodeBackendKeyData,
  [B.ParameterStatus]: decodeParameterStatus,
  [B.NotificationResponse]: decodeNotificationResponse,
};

function relay(client: net.Socket, target: { host: string; port: number }, seen: Seen): void {
  const upstream = net.connect(target.port, target.host);
  const frontend = new FrontendReader();
  const backend = new BackendReader();
  let startup: Buffer | undefined = Buffer.alloc(0);
  const fail = (error: unknown): void => {
    seen.failures.push(error);
    client.destroy();
    upstream.destroy();
  };
  client.on("data", (chunk: Buffer) => {
    try {
      if (startup) {
        startup = Buffer.concat([startup, chunk]);
        const read = readStartupPacket(startup);
        if (!read) return;
        if (read.packet.type === "ssl") {
          client.write(sslResponse(false));
          startup = startup.subarray(read.length);
          return;
        }
        upstream.write(startup.subarray(0, read.length));
        chunk = startup.subarray(read.length);
        startup = undefined;
      }
      frontend.push(chunk);
      for (let m = frontend.next(); m; m = frontend.next()) {
        seen.frontend.push(m.msg);
        upstream.write(m.raw);
      }
    } catch (error) {
      fail(error);
    }
  });
  upstream.on("data", (chunk: Buffer) => {
    try {
      backend.push(chunk);
      for (let m = backend.next(); m; m = backend.next()) {
        seen.backend.push({ code: m.code, decoded: DECODERS[m.code]?.(m.body) });
        client.write(m.raw);
      }
    } catch (error) {
      fail(error);
    }
  });
  client.on("error", () => upstream.destroy());
  upstream.on("error", () => client.destroy());
  client.on("close", () => upstream.destroy());
  upstream.on("close", () => client.destroy());
}

describe("pgwire readers between node-postgres and PostgreSQL", () => {
  let proxy: net.Server;
  let client: pg.Client;
  const seen: Seen = { frontend: [], backend: [], failures: [] };

  before(async () => {
    const pgEnv = testServices().pg;
    proxy = net.createServer((socket) => relay(socket, pgEnv, seen));
    proxy.listen(0, "127.0.0.1");
    await once(proxy, "listening");
    const { port } = proxy.address() as net.AddressInfo;
    client = new pg.Client({
      host: "127.0.0.1",
      port,
      user: pgEnv.user,
      password: pgEnv.password,
      database: "postgres",
    });
    await client.connect();
  });

  after(async () => {
    await client?.end().catch(() => {});
    proxy?.close();
  });

  afterEach(() => assert.deepEqual(seen.failures, []));

  /** What the proxy saw while `run` ran. */
  async function watch(run: () => Promise<unknown>): Promise<Seen> {
    const from = { frontend: seen.frontend.length, backend: seen.backend.length };
    await run();
    return {
      frontend: seen.frontend.slice(from.frontend),
      backend: seen.backend.slice(from.backend),
      failures: [],
    };
  }

  it("passed SCRAM authentication and the session start through", () => {
    const types = seen.frontend.map((m) => m.type);
    assert.deepEqual(types.slice(0, 2), ["password", "password"]); // SASLInitialResponse, SASLResponse
    const key = seen.backend.find((m) => m.code === B.BackendKeyData)?.decoded as { secret: Buffer };
    assert.equal(key.secret.length, 4);
    const params = seen.backend.filter((m) => m.code === B.ParameterStatus).map((m) => m.decoded);
    assert.ok(params.some((p) => (p as { name: string }).name === "server_version"));
  });

  it("decodes a simple query's rows and tag as the client sees them", async () => {
    let rows: unknown[] = [];
    const s = await watch(async () => {
      rows = (await client.query("select 1 as one, 'ü'::text as t, null::int as n")).rows;
    });
    assert.deepEqual(rows, [{ one: 1, t: "ü", n: null }]);
    assert.deepEqual(s.frontend, [{ type: "query", text: "select 1 as one, 'ü'::text as t, null::int as n" }]);
    const fields = s.backend.find((m) => m.code === B.RowDescription)?.decoded as { name: string; typeOid: number }[];
    assert.deepEqual(
      fields.map((f) => [f.name, f.typeOid]),
      [
        ["one", 23],
        ["t", 25],
        ["n", 23],
      ],
    );
    assert.deepEqual(s.backend.find((m) => m.code === B.DataRow)?.decoded, ["1", "ü", undefined]);
    assert.equal(s.backend.find((m) => m.code === B.CommandComplete)?.decoded, "SELECT 1");
    assert.equal(s.backend.at(-1)?.decoded, "I");
  });

  it("decodes an extended query's Parse, Bind (text, NULL, binary) and Execute", async () => {
    const s = await watch(() =>
      client.query({
        text: "select $1::text as a, $2::int as b, $3::bytea as c",
        values: ["x", null, Buffer.from([0, 1])],
      }),
    );
    const bind = s.frontend.find((m) => m.type === "bind");
    assert.deepEqual(bind, {
      type: "bind",
      portal: "",
      statement: "",
      paramFormats: [0, 0, 1],
      params: [Buffer.from("x"), null, Buffer.from([0, 1])],
      resultFormats: [0],
    });
    assert.deepEqual(
      s.frontend.map((m) => m.type),
      ["parse", "bind", "describe", "execute", "sync"],
    );
  });

  it("decodes the server's ErrorResponse", async () => {
    const s = await watch(() => client.query("select * from no_such_table").catch(() => {}));
    const error = s.backend.find((m) => m.code === B.ErrorResponse)?.decoded as Record<string, string>;
    assert.equal(error.C, "42P01");
    assert.equal(error.S, "ERROR");
    assert.match(error.M ?? "", /no_such_table/);
  });

  it("carries a 20 MiB parameter and result across many socket chunks", async () => {
    const big = "v".repeat(20 * 1024 * 1024);
    let echoed = "";
    const s = await watch(async () => {
      echoed = (await client.query("select $1::text as big", [big])).rows[0].big;
    });
    assert.equal(echoed.length, big.length);
    const bind = s.frontend.find((m) => m.type === "bind");
    assert.equal(bind?.type === "bind" && bind.params[0]?.length, big.length);
  });

  it("decodes a NotificationResponse", async () => {
    await client.query("listen vigil_pgwire");
    const got = once(client, "notification");
    const s = await watch(async () => {
      await client.query("notify vigil_pgwire, 'hello'");
      await got;
    });
    const note = s.backend.find((m) => m.code === B.NotificationResponse)?.decoded as { channel: string };
    assert.deepEqual({ ...note, pid: 0 }, { pid: 0, channel: "vigil_pgwire", payload: "hello" });
  });
});
