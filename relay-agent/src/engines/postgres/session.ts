import { RowDigest } from "./row-digest.js";
import type { Duplex } from "node:stream";
import { analyzeSql } from "../../../../lib/analyze/sql.js";
import type { SqlCommand } from "../../../../lib/policy/command.js";
import { evaluate, type Decision, type MaskPlan, type PreparedPolicy } from "../../../../lib/policy/evaluate.js";
import {
  B,
  BackendReader,
  dataRowRun,
  decodeCommandComplete,
  decodeDataRow,
  decodeErrorFields,
  decodeReadyForQuery,
  decodeRowDescription,
  errorResponse,
  noticeResponse,
  parameterStatus,
  readyForQuery,
  type RowField,
} from "../../../../lib/pgwire/backend.js";
import { PgProtocolError } from "../../../../lib/pgwire/errors.js";
import { FrontendReader, serializeDescribe, type FrontendMessage } from "../../../../lib/pgwire/frontend.js";
import {
  Decision as RecordedDecision,
  type Result,
  type Row,
  type Value,
} from "../../../../proto/gen/vigil/v1/recording.js";
import type { Masker } from "../../../../lib/masking/index.js";
import type { SessionRecording } from "../../recording/recorder.js";
import type { SessionContext } from "../engine.js";
import { MaskerCache, RowMasker } from "./row-masker.js";
import type { TableNames } from "./table-names.js";
import type { TargetConnection } from "./target.js";

/** How many rows of each result go into the recording (masked for the record). */
const SAMPLE_ROWS = 5;
/** How much of one value (a parameter, a sampled cell) the recording keeps. */
const RECORDED_VALUE_BYTES = 1024;
/** How much of a statement's text the recording keeps. */
const RECORDED_TEXT_CHARS = 64 * 1024;
/** Answers smaller than this are joined into one write to the client; larger ones go as their parts. */
const JOIN_BELOW_BYTES = 16 * 1024;
/** SQLSTATE for statements Vigil refuses: insufficient_privilege, as the target would for a missing grant. */
const DENIED = "42501";

/** A command that policy judged, as its result is tracked. */
interface Judged {
  seq: number;
  decision: Decision;
  started: number;
}

/** Result-set state of a query or an execution while its rows stream. */
interface ResultState {
  live?: RowMasker;
  record?: RowMasker;
  columns?: string[];
  rows: number;
  digest?: RowDigest;
  /** The first rows as recorded (record masks applied, values clipped). */
  sample?: Row[];
}

/**
 * What the target still owes: one entry per forwarded message that gets an answer, in order, plus
 * Vigil's own answers (`inject`) queued where they belong so they reach the client in protocol order.
 */
type Pending =
  | ({ kind: "query"; result: ResultState } & Judged)
  | ({ kind: "execute"; portal: Portal; result: ResultState } & Judged)
  | { kind: "sync" }
  | { kind: "parse" | "bind" | "close" }
  | { kind: "describe"; target: "S" | "P"; statement?: Statement; portal?: Portal; internal?: boolean }
  | { kind: "inject"; bytes: () => Buffer };

/** A RowDescription as received, its fields, and the row maskers built for them (per masker). */
interface Described {
  body: Buffer;
  fields: RowField[];
  columns: string[];
  maskers: Map<Masker, RowMasker>;
}

interface Statement {
  text: string;
  command: SqlCommand;
  /** Columns from a Describe of the statement (always text format there). */
  fields?: RowField[];
}

interface Portal {
  name: string;
  statement: Statement;
  resultFormats: number[];
  fields?: RowField[];
  params: (Buffer | null)[];
  paramFormats: number[];
}

/**
 * One client session through the relay: every frontend message is parsed, every statement judged
 * by the session's compiled policy before it reaches the target, and every result streamed back
 * with live masks applied and record masks, a digest and a sample sent to the recording.
 * Messages that pass unchanged are forwarded as the client sent them (no re-serialization).
 */
export class PgSession {
  private readonly frontend = new FrontendReader();
  private readonly backend = new BackendReader();
  private readonly pending: Pending[] = [];
  private readonly statements = new Map<string, Statement>();
  private readonly portals = new Map<string, Portal>();
  private readonly maskers = new MaskerCache();
  private txStatus: "I" | "T" | "E";
  /** After a refused extended-protocol message: drop everything until Sync, as a server does after an error. */
  private discarding = false;
  private commands = 0;
  private clientEnded = false;
  private lookingUp = false;
  private deferred: { code: number; raw: Buffer; body: Buffer } | undefined;
  private tableRulesOf: { policy: PreparedPolicy; qualified: boolean } | undefined;
  /** The last RowDescription and what was built from it: a session mostly repeats a few statements. */
  private described: Described | undefined;
  /** Target-bound bytes gathered while one client chunk is processed: one write per chunk. */
  private toTarget: Buffer[] = [];
  private toClient: Buffer[] = [];
  private client!: Duplex;

  constructor(
    private readonly ctx: SessionContext,
    private readonly target: TargetConnection,
    private readonly recording: SessionRecording,
    private readonly tables: TableNames,
  ) {
    this.txStatus = target.transactionStatus;
  }

  serve(client: Duplex): Promise<void> {
    this.client = client;
    const socket = this.target.socket;
    return new Promise<void>((resolve, reject) => {
      let clientDone = false;
      let targetDone = false;
      let failed = false;
      const fail = (err: Error) => {
        if (failed) return;
        failed = true;
        socket.destroy();
        reject(err);
      };
      const maybeDone = () => clientDone && targetDone && !failed && resolve();

      // The greeting the hub left to us: the target's parameters, then ReadyForQuery.
      const greeting = Object.entries(this.target.parameters).map(([k, v]) => parameterStatus(k, v));
      greeting.push(readyForQuery(this.txStatus));
      client.write(Buffer.concat(greeting));

      socket.on("data", (chunk: Buffer) => {
        try {
          this.onTargetData(chunk);
        } catch (err) {
          fail(err as Error);
        }
      });
      socket.on("end", () => {
        targetDone = true;
        this.flushClient();
        client.end();
        maybeDone();
      });
      socket.on("error", (err) => fail(err));
      client.on("error", (err) => fail(err));
      if (this.target.leftover.length > 0) this.onTargetData(this.target.leftover);

      const ended = () => {
        clientDone = true;
        socket.end();
        maybeDone();
      };
      const malformed = (err: PgProtocolError) => {
        // A malformed frame ends this session only, with the error a server would send.
        this.flushClient();
        this.ctx.log.warn({ sqlstate: err.sqlstate, err: err.message }, "client sent a malformed message");
        client.end(errorResponse({ severity: "FATAL", code: err.sqlstate, message: err.message }));
        socket.destroy();
        clientDone = targetDone = true;
        resolve();
      };
      // Parse what arrived; a held (reviewed) message pauses the client until it is decided.
      const pump = (): void => {
        try {
          for (;;) {
            const next = this.frontend.next();
            if (!next) break;
            const held = this.onClientMessage(next.msg, next.raw);
            if (held) {
              this.flushTarget();
              this.flushClient();
              client.pause();
              held.then(
                () => {
                  client.resume();
                  pump();
                },
                (err: Error) => fail(err),
              );
              return;
            }
          }
          this.flushClient();
          if (!this.flushTarget()) {
            client.pause();
            socket.once("drain", () => client.resume());
          }
          if (this.clientEnded && !clientDone) ended();
        } catch (err) {
          if (err instanceof PgProtocolError) malformed(err);
          else fail(err as Error);
        }
      };
      client.on("data", (chunk: Buffer) => {
        try {
          this.frontend.push(chunk);
        } catch (err) {
          if (err instanceof PgProtocolError) return malformed(err);
          return fail(err as Error);
        }
        pump();
      });
      client.on("end", () => {
        this.clientEnded = true;
        if (!client.isPaused()) pump();
      });
    });
  }

  // ---- client → target ----

  /** Returns a promise only when the message is held (review); everything else is handled at once. */
  private onClientMessage(msg: FrontendMessage, raw: Buffer): Promise<void> | undefined {
    if (this.discarding) {
      if (msg.type !== "sync") return;
      this.discarding = false;
    }
    switch (msg.type) {
      case "query": {
        return this.judge(analyzeSql(msg.text), undefined, raw);
      }
      case "parse": {
        this.statements.set(msg.name, { text: msg.text, command: analyzeSql(msg.text) });
        return this.forward(raw, { kind: "parse" });
      }
      case "bind": {
        const statement = this.statements.get(msg.statement);
        if (!statement) {
          // The target will answer with its own error; keep our books in step with it.
          this.portals.delete(msg.portal);
          return this.forward(raw, { kind: "bind" });
        }
        const portal: Portal = {
          name: msg.portal,
          statement,
          resultFormats: msg.resultFormats,
          params: msg.params,
          paramFormats: msg.paramFormats,
        };
        if (statement.fields) portal.fields = withFormats(statement.fields, msg.resultFormats);
        this.portals.set(msg.portal, portal);
        return this.forward(raw, { kind: "bind" });
      }
      case "describe":
        return this.forward(raw, {
          kind: "describe",
          target: msg.target,
          ...(msg.target === "S"
            ? { statement: this.statements.get(msg.name) }
            : { portal: this.portals.get(msg.name) }),
        });
      case "execute": {
        const portal = this.portals.get(msg.portal);
        // A portal we did not see bound cannot be judged (its Bind failed, or it never existed).
        if (!portal) return this.refuse(`portal "${msg.portal}" does not exist`, undefined, true, "34000");
        return this.judge(portal.statement.command, portal, raw);
      }
      case "close":
        if (msg.target === "S") this.statements.delete(msg.name);
        else this.portals.delete(msg.name);
        return this.forward(raw, { kind: "close" });
      case "sync":
        this.portals.delete("");
        return this.forward(raw, { kind: "sync" });
      case "flush":
      case "copyData":
      case "copyDone":
      case "copyFail":
        this.toTarget.push(raw);
        return;
      case "terminate":
        this.toTarget.push(raw);
        return;
      case "functionCall":
        // The fast-path interface calls functions by OID with no SQL to judge: refused.
        return this.refuse("fast-path function calls are not allowed through Vigil", undefined, false);
      case "password":
        throw new PgProtocolError("08P01", "unexpected password message after authentication");
    }
  }

  private forward(raw: Buffer, p: Pending): undefined {
    this.toTarget.push(raw);
    this.pending.push(p);
    return undefined;
  }

  /**
   * Evaluate a query or an execution: allow forwards it, deny answers 42501 in its place, review
   * holds it (and everything after it) until the approvers decide.
   */
  private judge(command: SqlCommand, portal: Portal | undefined, raw: Buffer): Promise<void> | undefined {
    const seq = ++this.commands;
    if (!this.recording.ok()) {
      // Nothing runs unrecorded.
      return this.refuse(
        "the session's recording is unavailable; commands are refused",
        seq,
        portal !== undefined,
        "58030",
      );
    }
    const decision = evaluate(this.ctx.policy.current, command);
    this.recordCommand(seq, command, portal, decision);
    const extended = portal !== undefined;
    if (decision.effect === "deny") {
      const why = decision.reason.includes(decision.rule)
        ? decision.reason
        : `${decision.reason} (rule ${decision.rule})`;
      return this.refuse(why, seq, extended);
    }
    if (!this.copyAllowed(command, decision.masks)) {
      return this.refuse("COPY TO is refused while a column of this session is masked", seq, extended);
    }
    if (decision.effect === "allow") {
      this.run(portal, decision, seq, raw);
      return undefined;
    }
    return this.review(command, decision, seq, extended, () => this.run(portal, decision, seq, raw));
  }

  /** Send an allowed (or approved) query or execution to the target, and expect its answer. */
  private run(
    portal: Portal | undefined,
    decision: Exclude<Decision, { effect: "deny" }>,
    seq: number,
    raw: Buffer,
  ): void {
    // Rows of an execution carry no RowDescription: when they must be masked and no Describe told us
    // their columns, ask the target ourselves (the answer is not passed on).
    if (portal && !portal.fields && masksAnything(decision.masks)) {
      this.toTarget.push(serializeDescribe("P", portal.name));
      this.pending.push({ kind: "describe", target: "P", portal, internal: true });
    }
    this.toTarget.push(raw);
    const started = performance.now();
    this.pending.push(
      portal
        ? { kind: "execute", portal, result: { rows: 0 }, seq, decision, started }
        : { kind: "query", result: { rows: 0 }, seq, decision, started },
    );
  }

  private async review(
    command: SqlCommand,
    decision: Extract<Decision, { effect: "review" }>,
    seq: number,
    extended: boolean,
    run: () => void,
  ): Promise<void> {
    const text = this.recordText(command.text, decision.masks);
    const outcome = await this.ctx.requestApproval({ rule: decision.rule, command: text }, (approvalId) => {
      this.recording.record({
        $case: "approval",
        value: { command: seq, approvalId, status: "pending", decisions: [], message: "" },
      });
      this.inject(() =>
        noticeResponse({
          severity: "NOTICE",
          code: "00000",
          message: `waiting for approval ${approvalId} (rule ${decision.rule}): vigil approvals approve ${approvalId}`,
        }),
      );
      this.flushClient();
    });
    this.recording.record({
      $case: "approval",
      value: {
        command: seq,
        approvalId: outcome.approvalId,
        status: outcome.status,
        decisions: outcome.decisions,
        message: outcome.message ?? "",
      },
    });
    if (outcome.status === "approved") {
      const by = outcome.decisions.filter((d) => d.verdict === "approve").map((d) => d.by);
      this.ctx.log.info({ approval: outcome.approvalId, by }, "held statement approved");
      run();
      this.flushTarget();
      return;
    }
    const why =
      outcome.status === "expired"
        ? `approval ${outcome.approvalId} timed out`
        : outcome.status === "denied"
          ? `approval ${outcome.approvalId} was denied`
          : `no approval could be requested: ${outcome.message}`;
    this.ctx.log.info({ approval: outcome.approvalId, status: outcome.status }, "held statement refused");
    void this.refuse(`${why} (rule ${decision.rule})`, seq, extended);
    this.flushClient();
  }

  /**
   * Answer in the target's place: ErrorResponse 42501, then ReadyForQuery with the real transaction
   * status (simple protocol), or discard until Sync (extended protocol: Sync then gets the target's own).
   */
  private refuse(message: string, seq: number | undefined, extended: boolean, code = DENIED): undefined {
    const error = errorResponse({ severity: "ERROR", code, message: `Vigil: ${message}` });
    if (seq !== undefined) {
      this.recording.record({ $case: "result", value: resultEvent(seq, { error: { code: DENIED, message } }) });
    }
    if (extended) {
      this.discarding = true;
      this.inject(() => error);
    } else {
      this.inject(() => Buffer.concat([error, readyForQuery(this.txStatus)]));
    }
    return undefined;
  }

  /** COPY … TO STDOUT sends rows as CopyData, which column rules cannot see into: refused when any apply. */
  private copyAllowed(command: SqlCommand, masks: MaskPlan): boolean {
    if (masks.live.columns.length === 0) return true;
    return !command.statements.some((s) => s.kind === "copy_to");
  }

  /** Queue Vigil's own answer behind what the target still owes. */
  private inject(bytes: () => Buffer): void {
    this.pending.push({ kind: "inject", bytes });
    this.drainInjected();
  }

  private drainInjected(): void {
    while (this.pending[0]?.kind === "inject") {
      this.toClient.push((this.pending.shift() as { bytes: () => Buffer }).bytes());
    }
  }

  private flushTarget(): boolean {
    if (this.toTarget.length === 0) return true;
    const out = joined(this.toTarget);
    this.toTarget = [];
    return this.target.socket.write(out);
  }

  private flushClient(): void {
    this.drainInjected();
    if (this.toClient.length === 0) return;
    const parts = this.toClient;
    this.toClient = [];
    let ok = true;
    const whole = adjoining(parts);
    if (whole) ok = this.client.write(whole);
    else if (totalLength(parts) < JOIN_BELOW_BYTES) ok = this.client.write(Buffer.concat(parts));
    else {
      // A chunk's rows as a run or two, the row split across the chunk before it: the tunnel gathers
      // writes into its frame anyway, so joining them here would be one more copy of every byte.
      this.client.cork();
      for (const part of parts) ok = this.client.write(part);
      this.client.uncork();
    }
    if (!ok) {
      this.target.socket.pause();
      this.client.once("drain", () => this.target.socket.resume());
    }
  }

  // ---- target → client ----

  private onTargetData(chunk: Buffer): void {
    this.backend.push(chunk);
    this.drainTarget();
  }

  /** Handle what the target sent, unless a table-name lookup holds the stream (then resume after it). */
  private drainTarget(): void {
    while (!this.lookingUp) {
      if (!this.deferred && this.rowsInPlace()) continue;
      const m = this.deferred ?? this.backend.next();
      this.deferred = undefined;
      if (!m) break;
      if (m.code === B.RowDescription && this.needsTableNames()) {
        const missing = this.tables.missing(decodeRowDescription(m.body).map((f) => f.tableOid));
        if (missing.length > 0) {
          this.lookUpTables(missing, m);
          break;
        }
      }
      this.onTargetMessage(m.code, m.raw, m.body);
    }
    this.flushClient();
  }

  /**
   * Column rules naming a table (`users.email`) need the tables behind RowDescription's OIDs. The
   * stream waits for the lookup; when it fails, the session ends rather than pass rows unmasked.
   */
  private lookUpTables(oids: number[], m: { code: number; raw: Buffer; body: Buffer }): void {
    this.lookingUp = true;
    this.deferred = m;
    this.target.socket.pause();
    this.tables.resolve(oids).then(
      () => {
        this.lookingUp = false;
        this.target.socket.resume();
        this.drainTarget();
      },
      (err: Error) => {
        this.ctx.log.warn({ err: err.message }, "table names for masking could not be resolved");
        this.target.socket.destroy(new Error(`cannot resolve table names for masking: ${err.message}`));
      },
    );
  }

  private needsTableNames(): boolean {
    const current = this.ctx.policy.current;
    if (this.tableRulesOf?.policy !== current) {
      const qualified = current.policy.rules.some((r) =>
        r.mask?.columns?.some((c) => c.lastIndexOf(".") > 0 && c.slice(0, c.lastIndexOf(".")) !== "*"),
      );
      this.tableRulesOf = { policy: current, qualified };
    }
    return this.tableRulesOf.qualified;
  }

  private onTargetMessage(code: number, raw: Buffer, body: Buffer): void {
    const head = this.pending[0];
    /** Whether this message is the last the head entry waits for. */
    let complete = false;
    switch (code) {
      case B.DataRow: {
        if (head?.kind !== "query" && head?.kind !== "execute") break;
        if (!head.result.digest) this.startResult(head, head.kind === "execute" ? head.portal.fields : undefined);
        this.toClient.push(this.onRow(head.result, raw, body));
        return;
      }
      case B.RowDescription: {
        const fields = this.describeRows(body);
        if (head?.kind === "describe") {
          if (head.statement) head.statement.fields = fields;
          if (head.portal) head.portal.fields = fields;
          complete = true;
        } else if (head?.kind === "query" || head?.kind === "execute") {
          this.startResult(head, fields);
        }
        break;
      }
      case B.NoData:
        complete = head?.kind === "describe";
        break;
      case B.ParseComplete:
      case B.BindComplete:
      case B.CloseComplete:
        complete = head?.kind === "parse" || head?.kind === "bind" || head?.kind === "close";
        break;
      case B.CommandComplete:
      case B.EmptyQueryResponse:
      case B.PortalSuspended:
        if (head?.kind === "query" || head?.kind === "execute") {
          this.finishResult(head, code === B.CommandComplete ? decodeCommandComplete(body) : undefined);
          complete = head.kind === "execute";
        }
        break;
      case B.ErrorResponse:
        this.toClient.push(raw);
        this.onTargetError(head, body);
        return;
      case B.ReadyForQuery:
        this.txStatus = decodeReadyForQuery(body);
        complete = head?.kind === "query" || head?.kind === "sync";
        break;
      default:
        // Notices, notifications, parameter changes, COPY traffic: passed through as they come.
        break;
    }
    // The answer to a Describe Vigil sent itself is not the client's.
    if (!(complete && head?.kind === "describe" && head.internal)) this.toClient.push(raw);
    if (complete) this.done();
  }

  /** Pop the head, then send any of Vigil's own answers that were waiting behind it. */
  private done(): void {
    this.pending.shift();
    this.drainInjected();
  }

  private onTargetError(head: Pending | undefined, body: Buffer): void {
    if (head?.kind === "query" || head?.kind === "execute") {
      const f = decodeErrorFields(body);
      this.finishResult(head, undefined, { code: f.C ?? "", message: f.M ?? "" });
    }
    if (!head || head.kind === "query" || head.kind === "sync" || head.kind === "inject") return;
    // Extended protocol: the target skips to the next Sync, and so do our books (with our own answers).
    while (this.pending.length > 0 && this.pending[0]!.kind !== "sync") this.pending.shift();
  }

  /**
   * Set up masking for a result set. Rows whose columns are unknown cannot be masked by column, so
   * when masks apply and no description came, the session fails closed rather than pass them.
   */
  private startResult(head: Extract<Pending, { result: ResultState }>, fields: RowField[] | undefined): void {
    const masks = head.decision.effect === "deny" ? undefined : head.decision.masks;
    if (!fields) {
      if (masks && masksAnything(masks)) throw new Error("result columns unknown: rows cannot be masked");
      head.result = { rows: 0, digest: new RowDigest() };
      return;
    }
    const known = this.described?.fields === fields ? this.described : undefined;
    const result: ResultState = {
      rows: 0,
      columns: known?.columns ?? fields.map((f) => f.name),
      digest: new RowDigest(),
    };
    if (masks) {
      const live = this.maskers.get(masks.live);
      const record = this.maskers.get(masks.record);
      if (live) result.live = this.rowMasker(known, live, fields, masks.live.detectors.length > 0);
      if (record) result.record = this.rowMasker(known, record, fields, masks.record.detectors.length > 0);
    }
    head.result = result;
  }

  /** Decode a RowDescription, or reuse the last decoding when the target sent the same bytes again. */
  private describeRows(body: Buffer): RowField[] {
    const last = this.described;
    if (last && last.body.equals(body)) return last.fields;
    const fields = decodeRowDescription(body);
    // A copy: body is a view into a received chunk.
    this.described = { body: Buffer.from(body), fields, columns: fields.map((f) => f.name), maskers: new Map() };
    return fields;
  }

  /** A masker's plan for these columns; the same columns and masker need it worked out once. */
  private rowMasker(known: Described | undefined, masker: Masker, fields: RowField[], scan: boolean): RowMasker {
    const cached = known?.maskers.get(masker);
    if (cached) return cached;
    const made = new RowMasker(masker, fields, this.tableOf, scan);
    known?.maskers.set(masker, made);
    return made;
  }

  /**
   * A result's rows as they lie in one received chunk, handled a run at a time (a large result is
   * mostly this): counted, digested and masked without a view or an object per row, and passed on
   * as one slice of the chunk, or as one buffer when live masks rewrite values. The first rows of a
   * result go one by one (the recording's sample reads them). False when the next message is not a
   * whole DataRow of a result in the chunk at hand.
   */
  private rowsInPlace(): boolean {
    const head = this.pending[0];
    if (head?.kind !== "query" && head?.kind !== "execute") return false;
    const run = dataRowRun(this.backend);
    if (!run) return false;
    if (!head.result.digest) this.startResult(head, head.kind === "execute" ? head.portal.fields : undefined);
    const { chunk, end } = run;
    this.backend.skip(end - run.start);
    const result = head.result;
    let start = run.start;
    let count = run.count;
    while (result.rows < SAMPLE_ROWS && count > 0) {
      const next = start + 1 + chunk.readUInt32BE(start + 1);
      this.toClient.push(this.onRow(result, chunk.subarray(start, next), chunk.subarray(start + 5, next)));
      start = next;
      count--;
    }
    if (count === 0) return true;
    result.rows += count;
    result.digest!.updateRun(chunk, start, end);
    this.toClient.push(result.live?.active ? result.live.maskRun(chunk, start, end) : chunk.subarray(start, end));
    return true;
  }

  private onRow(result: ResultState, raw: Buffer, body: Buffer): Buffer {
    result.rows++;
    result.digest?.update(body);
    if (result.rows <= SAMPLE_ROWS) {
      // The record masks go through the same row rewrite as the live ones; the sample reads the result.
      const recorded = decodeDataRow(result.record?.maskRow(body)?.subarray(5) ?? body);
      (result.sample ??= []).push({ values: recorded.map((v) => (v === null ? {} : { text: clip(v) })) });
    }
    if (!result.live?.active) return raw;
    return result.live.maskRow(body) ?? raw;
  }

  private finishResult(
    head: Extract<Pending, { result: ResultState }>,
    tag: string | undefined,
    error?: { code: string; message: string },
  ): void {
    const r = head.result;
    // Every field written out (resultEvent's spread would make two objects per statement).
    this.recording.record({
      $case: "result",
      value: {
        command: head.seq,
        tag: tag ?? "",
        rows: BigInt(r.rows),
        bytes: 0n,
        durationUs: BigInt(Math.round((performance.now() - head.started) * 1000)),
        digest: r.digest ? r.digest.hex() : "",
        columns: r.columns ?? [],
        sample: r.sample ?? [],
        exitStatus: undefined,
        exitSignal: undefined,
        error,
      },
    });
    // A query string may hold several statements: each gets its own result set.
    head.result = { rows: 0 };
  }

  private readonly tableOf = (oid: number) => this.tables.get(oid);

  // ---- recording ----

  private recordCommand(seq: number, command: SqlCommand, portal: Portal | undefined, decision: Decision): void {
    const masks = decision.effect === "deny" ? undefined : decision.masks;
    const only = command.statements.length === 1 ? command.statements[0]! : undefined;
    // One plain statement (the usual case) already lists its tables once each.
    const all = only && only.nested.length === 0 ? undefined : allStatements(command.statements);
    this.recording.record({
      $case: "command",
      value: {
        command: seq,
        text: this.recordText(command.text, masks),
        source: "sql",
        kinds: all ? [...new Set(all.map((s) => s.kind))] : [only!.kind],
        tablesRead: all ? [...new Set(all.flatMap((s) => s.tablesRead))] : only!.tablesRead,
        tablesWritten: all ? [...new Set(all.flatMap((s) => s.tablesWritten))] : only!.tablesWritten,
        params: portal ? portal.params.map((p, i) => toValue(this.recordParam(p, portal.paramFormats, i, masks))) : [],
        decision: DECISIONS[decision.effect],
        rule: decision.rule ?? "",
        reason: decision.effect === "deny" ? decision.reason : "",
      },
    });
  }

  /** Statement text for the record: detectors of the record masks over it (literals included). */
  private recordText(text: string, masks: MaskPlan | undefined): string {
    if (text.length > RECORDED_TEXT_CHARS) {
      text = `${text.slice(0, RECORDED_TEXT_CHARS)}…(${text.length - RECORDED_TEXT_CHARS} more characters)`;
    }
    const masker = masks ? this.maskers.get(masks.record) : this.maskers.get(this.ctx.policy.current.baseMasks.record);
    return masker ? masker.maskText(text).text : text;
  }

  private recordParam(p: Buffer | null, formats: number[], i: number, masks: MaskPlan | undefined): string | null {
    if (p === null) return null;
    const format = formats.length === 0 ? 0 : formats.length === 1 ? formats[0] : formats[i];
    if (format === 1) return `<binary ${p.length} bytes>`;
    return this.recordText(clip(p), masks);
  }
}

const DECISIONS = {
  allow: RecordedDecision.DECISION_ALLOW,
  deny: RecordedDecision.DECISION_DENY,
  review: RecordedDecision.DECISION_REVIEW,
} as const;

const toValue = (v: string | null): Value => (v === null ? {} : { text: v });

/** A result event with every field not given left empty. */
function resultEvent(command: number, fields: Partial<Result>): Result {
  return {
    command,
    tag: "",
    rows: 0n,
    bytes: 0n,
    durationUs: 0n,
    digest: "",
    columns: [],
    sample: [],
    error: undefined,
    ...fields,
  };
}

function allStatements(list: SqlCommand["statements"]): SqlCommand["statements"] {
  return list.flatMap((s) => [s, ...allStatements(s.nested)]);
}

/** A statement's columns (described in text format) with the formats a Bind asked for. */
function withFormats(fields: RowField[], formats: number[]): RowField[] {
  if (formats.length === 0) return fields;
  return fields.map((f, i) => ({ ...f, format: (formats.length === 1 ? formats[0] : formats[i]) === 1 ? 1 : 0 }));
}

/**
 * A value as the recording keeps it: the first RECORDED_VALUE_BYTES, then how much was left out.
 * The cut is made before masking, and on a character boundary, so what is kept is masked like the rest.
 */
function clip(v: Buffer): string {
  if (v.length <= RECORDED_VALUE_BYTES) return v.toString("utf8");
  let end = RECORDED_VALUE_BYTES;
  while (end > 0 && (v[end]! & 0xc0) === 0x80) end--;
  return `${v.subarray(0, end).toString("utf8")}…(${v.length - end} more bytes)`;
}

/** Parts as one buffer: without a copy when they lie back to back in one received chunk (see adjoining). */
function joined(parts: Buffer[]): Buffer {
  return adjoining(parts) ?? Buffer.concat(parts);
}

/**
 * One view over parts that lie back to back in the same memory, or undefined. Messages passed on
 * unchanged are views into the chunk they came in: a whole answer (RowDescription, DataRow,
 * CommandComplete, ReadyForQuery; or Bind, Execute, Sync) then goes on as one slice, not a copy.
 */
function adjoining(parts: Buffer[]): Buffer | undefined {
  const first = parts[0]!;
  if (parts.length === 1) return first;
  let end = first.byteOffset + first.length;
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i]!;
    if (part.buffer !== first.buffer || part.byteOffset !== end) return undefined;
    end += part.length;
  }
  return Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset);
}

function totalLength(parts: Buffer[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

const masksAnything = (m: MaskPlan) =>
  m.live.columns.length + m.live.detectors.length + m.record.columns.length + m.record.detectors.length > 0;
