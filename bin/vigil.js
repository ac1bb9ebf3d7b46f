#!/usr/bin/env node
// Vigil runs its TypeScript sources through tsx's loader: no build step between a checkout and `vigil`.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
