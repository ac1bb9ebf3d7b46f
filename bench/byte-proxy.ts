// A reference point for bench/postgres.ts, not part of Vigil: a PostgreSQL proxy in Node that does
// nothing but move bytes. It answers the client's SSLRequest and speaks TLS to it (as the hub's front
// door does), then pipes the session to PostgreSQL over plain TCP: no parsing, policy, masking or
// recording. What it costs is what any Node proxy with TLS costs on the machine.
// `node --import tsx bench/byte-proxy.ts <listen port> <target host> <target port> <cert.pem> <key.pem>`;
// prints "listening" when ready.
import { readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { TLSSocket } from "node:tls";

const [port, targetHost, targetPort, certFile, keyFile] = process.argv.slice(2);
const cert = readFileSync(certFile!);
const key = readFileSync(keyFile!);
/** PostgreSQL's SSLRequest code (the protocol's magic number in an 8-byte message). */
const SSL_REQUEST = 80877103;

const server = createServer({ noDelay: true }, (raw) => {
  raw.once("data", (first) => {
    if (first.length !== 8 || first.readUInt32BE(4) !== SSL_REQUEST) return raw.destroy();
    raw.write("S");
    const client = new TLSSocket(raw, { isServer: true, cert, key });
    const target = connect({ host: targetHost, port: Number(targetPort), noDelay: true });
    client.pipe(target).pipe(client);
    const end = () => (client.destroy(), target.destroy());
    client.on("error", end).on("close", end);
    target.on("error", end).on("close", end);
  });
});
server.listen(Number(port), "127.0.0.1", () => console.log("listening"));
