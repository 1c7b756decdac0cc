#!/usr/bin/env node
import { enableCompileCache } from "node:module";

// A command line starts often and lives briefly: Node's on-disk compile cache (in the OS temp
// directory) cuts the start-up of every later run by about a third. It has to be on before the
// program's modules load, hence the dynamic import.
enableCompileCache?.();
await import("./program.ts");
