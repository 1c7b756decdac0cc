// The README's Python client recipe, run as printed: buf's protoc_builtin generators into a
// temporary directory, then the result imported by Debian's python3 with python3-protobuf
// (.ci/run installs both it and protobuf-compiler). A missing tool fails the test: no skip.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const python = process.env.QUARTET_PYTHON ?? "/usr/bin/python3";

test("the README's buf.gen.python.yaml generates Python that imports with protobuf", () => {
  const out = mkdtempSync(join(tmpdir(), "quartet-python-"));
  const template = join(out, "buf.gen.python.yaml");
  writeFileSync(
    template,
    [
      "version: v2",
      "plugins:",
      "  - protoc_builtin: python",
      `    out: ${join(out, "gen/python")}`,
      "  - protoc_builtin: pyi",
      `    out: ${join(out, "gen/python")}`,
      "",
    ].join("\n"),
  );
  try {
    execFileSync(join(root, "node_modules/.bin/buf"), ["generate", "--template", template], {
      cwd: root,
      stdio: "pipe",
    });
  } catch (error) {
    throw new Error(
      `buf generate failed (needs protoc on PATH: apt-get install protobuf-compiler): ${(error as { stderr?: Buffer }).stderr}`,
    );
  }
  const script = [
    "from quartet.worker.v1 import worker_pb2",
    "from quartet.broker.v1 import broker_pb2",
    "r = worker_pb2.ComputeRequest(iterations=3, input='hello')",
    "print(sorted(worker_pb2.DESCRIPTOR.services_by_name), worker_pb2.ComputeRequest.FromString(r.SerializeToString()).iterations)",
  ].join("\n");
  let printed: string;
  try {
    printed = execFileSync(python, ["-c", script], {
      env: { ...process.env, PYTHONPATH: join(out, "gen/python") },
      encoding: "utf8",
    });
  } catch (error) {
    throw new Error(
      `${python} could not import the generated code (needs python3-protobuf): ${(error as { stderr?: string }).stderr}`,
    );
  }
  expect(printed.trim()).toBe("['WorkerAdminService', 'WorkerService'] 3");
});
