import { B, BackendReader, decodeDataRow, decodeErrorFields } from "../../../../lib/pgwire/backend.js";
import { serializeQuery, serializeTerminate } from "../../../../lib/pgwire/frontend.js";
import type { PostgresCredentials } from "./credentials.js";
import { connectTarget } from "./target.js";

/** Names are kept this long: a table dropped and its OID reused would otherwise keep an old name. */
const TTL_MS = 5 * 60_000;

/**
 * Table names for the OIDs in RowDescriptions, so that column rules like `users.email` apply. Looked
 * up on a short connection of the relay's own (never on the client's session), cached per database.
 */
export class TableNames {
  private readonly names = new Map<number, { name: string | undefined; at: number }>();

  constructor(
    private readonly address: string,
    private readonly credentials: PostgresCredentials,
    private readonly database: string,
  ) {}

  /** The cached name, or undefined (unknown or not a table). */
  get(oid: number): string | undefined {
    return this.names.get(oid)?.name;
  }

  /** Whether any of these OIDs needs a lookup first. */
  missing(oids: readonly number[]): number[] {
    const now = Date.now();
    return [...new Set(oids)].filter((oid) => {
      if (oid === 0) return false;
      const hit = this.names.get(oid);
      return !hit || now - hit.at > TTL_MS;
    });
  }

  /** Resolve OIDs to `schema.table`. Throws when the target cannot answer: masking then fails closed. */
  async resolve(oids: readonly number[]): Promise<void> {
    const list = oids.filter((o) => Number.isInteger(o) && o > 0).join(",");
    if (!list) return;
    const target = await connectTarget({
      address: this.address,
      credentials: this.credentials,
      database: this.database,
    });
    const socket = target.socket;
    try {
      const rows = await new Promise<(Buffer | null)[][]>((resolve, reject) => {
        const reader = new BackendReader();
        const out: (Buffer | null)[][] = [];
        let error: Error | undefined;
        socket.on("data", (chunk: Buffer) => {
          reader.push(chunk);
          for (let m = reader.next(); m; m = reader.next()) {
            if (m.code === B.DataRow) out.push(decodeDataRow(m.body).map((v) => (v ? Buffer.from(v) : null)));
            else if (m.code === B.ErrorResponse) error = new Error(decodeErrorFields(m.body).M ?? "lookup failed");
            else if (m.code === B.ReadyForQuery) return error ? reject(error) : resolve(out);
          }
        });
        socket.once("error", reject);
        socket.once("close", () => reject(new Error("the target closed the lookup connection")));
        socket.write(
          serializeQuery(
            `SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c ` +
              `JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid IN (${list})`,
          ),
        );
      });
      const now = Date.now();
      for (const oid of oids) this.names.set(oid, { name: undefined, at: now });
      for (const [oid, schema, table] of rows) {
        this.names.set(Number(oid!.toString()), { name: `${schema!.toString()}.${table!.toString()}`, at: now });
      }
    } finally {
      socket.end(serializeTerminate());
      socket.destroy();
    }
  }
}
