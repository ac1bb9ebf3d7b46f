import type { Duplex } from "node:stream";
import { loadSqlParser } from "../../../../lib/analyze/sql.js";
import type { Connection } from "../../../../lib/config/schema.js";
import { VigilError } from "../../../../lib/errors.js";
import type { EngineSession, ProtocolEngine, SessionContext } from "../engine.js";
import { postgresCredentials, type PostgresCredentials } from "./credentials.js";
import { PgSession } from "./session.js";
import { TableNames } from "./table-names.js";
import { cancelTarget, connectTarget } from "./target.js";

/**
 * `postgres`: the relay logs in to the target with its own credentials and then speaks for it to
 * the client (the hub already authenticated the client and sent AuthenticationOk). Every statement
 * is parsed and judged; results are masked on the wire.
 */
export const postgresEngine: ProtocolEngine = {
  check(connection: Connection): void {
    postgresCredentials(connection);
  },

  async open(ctx: SessionContext): Promise<EngineSession> {
    const credentials = postgresCredentials(ctx.connection);
    const database = chooseDatabase(ctx, credentials.database);
    const { database: _, ...params } = ctx.params;
    await loadSqlParser();
    const target = await connectTarget({ address: ctx.connection.target, credentials, database, params });
    const session = new PgSession(ctx, target, ctx.recording, tableNames(ctx.connection.target, credentials, database));
    return {
      serve: (client: Duplex) => session.serve(client),
      cancel: () => {
        cancelTarget({ address: ctx.connection.target, credentials, backendKey: target.backendKey }).catch((err) =>
          ctx.log.warn({ err: (err as Error).message }, "cancel request to the target failed"),
        );
      },
    };
  },
};

const tableCaches = new Map<string, TableNames>();

/** One table-name cache per target database, shared by its sessions. */
function tableNames(address: string, credentials: PostgresCredentials, database: string): TableNames {
  const key = `${address}/${database}/${credentials.user}`;
  let cache = tableCaches.get(key);
  if (!cache) tableCaches.set(key, (cache = new TableNames(address, credentials, database)));
  return cache;
}

/**
 * The database the client named, unless the connection pins one. libpq defaults dbname to the user
 * name, which here is the connection's name: that means "the default database", not a database.
 */
function chooseDatabase(ctx: SessionContext, pinned: string | undefined): string {
  const asked = ctx.params.database;
  const defaulted = !asked || asked === ctx.connection.name;
  if (pinned) {
    if (defaulted || asked === pinned) return pinned;
    throw new VigilError(
      "target_refused",
      `connection "${ctx.connection.name}" reaches database "${pinned}" only, not "${asked}"`,
      { nativeCode: "3D000" },
    );
  }
  return defaulted ? "postgres" : asked;
}
