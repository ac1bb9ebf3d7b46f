// Worker threads do not inherit the main thread's TypeScript loader (bin/vigil.js registers it):
// the insert thread registers its own, then runs its TypeScript.
import { register } from "tsx/esm/api";

register();
await import("./insert-thread-worker.ts");
