import { EventEmitter } from "node:events";
import { readFileSync, watch, type FSWatcher } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Logger } from "../../../lib/log.js";
import { expandPolicyPatterns, loadPolicies, type PolicySet } from "../../../lib/policy/load.js";

/**
 * The hub's policies: loaded at start (a broken file stops the hub), then reloaded when a policy
 * file changes or on SIGHUP. A broken edit is logged with file:line and the last good set stays in
 * force, and so does a file caught empty: a rewrite in progress (truncated, not yet written) would
 * otherwise revoke every running session for a moment. Emits "change" with the new set after every
 * successful reload.
 */
export class PolicyStore extends EventEmitter<{ change: [PolicySet] }> {
  private set: PolicySet;
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly onHup = () => this.reload("SIGHUP");

  constructor(
    private readonly patterns: readonly string[],
    private readonly log: Logger,
  ) {
    super();
    this.set = loadPolicies(patterns);
    this.report();
  }

  get current(): PolicySet {
    return this.set;
  }

  /** Watch the directories the patterns point into (files come and go), and listen for SIGHUP. */
  watch(debounceMs = 150): void {
    const dirs = new Set(this.patterns.map((p) => dirname(resolve(p))));
    for (const dir of dirs) {
      try {
        this.watchers.push(
          watch(dir, () => {
            clearTimeout(this.timer);
            this.timer = setTimeout(() => this.reload("file change"), debounceMs);
          }),
        );
      } catch (err) {
        this.log.warn({ dir, err: (err as Error).message }, "cannot watch policy directory; reload with SIGHUP");
      }
    }
    process.on("SIGHUP", this.onHup);
  }

  reload(reason: string): boolean {
    try {
      // Removing every policy of a file is written `policies: []`; an empty file is a write not yet done.
      const empty = expandPolicyPatterns(this.patterns).find((f) => readFileSync(f, "utf8").trim() === "");
      if (empty) {
        this.log.warn({ reason, file: empty }, "policy file is empty; keeping the last good policies");
        return false;
      }
      const next = loadPolicies(this.patterns);
      if (JSON.stringify(next) === JSON.stringify(this.set)) return true;
      this.set = next;
      this.log.info({ reason }, "policies reloaded");
      this.report();
      this.emit("change", next);
      return true;
    } catch (err) {
      this.log.error({ reason, err: (err as Error).message }, "policy reload failed; keeping the last good policies");
      return false;
    }
  }

  close(): void {
    clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    process.off("SIGHUP", this.onHup);
  }

  private report(): void {
    const { policies, files } = this.set;
    if (policies.length === 0)
      this.log.warn({ patterns: this.patterns }, "no policies loaded: every session will be refused");
    else this.log.info({ files, policies: policies.map((p) => p.name) }, "policies loaded");
  }
}
