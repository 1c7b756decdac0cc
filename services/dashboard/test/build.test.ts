// When npm start rebuilds the dashboard: a build older than any source, or none at all.
import { mkdtempSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { dashboardBuildNeeded } from "../src/build.ts";

function buildAt(seconds: number): string {
  const dist = mkdtempSync(join(tmpdir(), "dashboard-build-"));
  writeFileSync(join(dist, "index.html"), "<!doctype html>");
  utimesSync(join(dist, "index.html"), seconds, seconds);
  return dist;
}

test("no build is missing; one older than the sources is stale; a newer one is kept", () => {
  expect(dashboardBuildNeeded(join(tmpdir(), "no-such-dashboard-dist"))).toBe("missing");
  expect(dashboardBuildNeeded(buildAt(1))).toBe("stale");
  const future = Date.now() / 1000 + 3600;
  expect(dashboardBuildNeeded(buildAt(future))).toBeUndefined();
});
