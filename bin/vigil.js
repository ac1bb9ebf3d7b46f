#!/usr/bin/env -S node --max-semi-space-size=64
// --max-semi-space-size: a larger young generation; the data path allocates per message, and fewer
// scavenges cost less CPU per statement (docs/benchmarks.md, PostgreSQL). `npm start` and the
// container image pass the same flag.
// Vigil runs its TypeScript sources through tsx's loader: no build step between a checkout and `vigil`.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
