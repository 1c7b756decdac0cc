import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, parseConfig, serverSettings } from "../src/index.ts";

const spec = {
  name: "quartet-test",
  summary: "a test binary",
  settings: {
    ...serverSettings,
    port: { schema: z.coerce.number().int().min(0).max(65535).default(7201), help: "port" },
    fanoutHosts: { schema: z.string().default("127.0.0.1"), help: "hosts" },
  },
};

describe("parseConfig", () => {
  it("takes flags first, then QUARTET_* variables, then defaults", () => {
    const config = parseConfig(spec, ["--port", "9000"], {
      QUARTET_PORT: "8000",
      QUARTET_FANOUT_HOSTS: "a,b",
    });
    expect(config.port).toBe(9000);
    expect(config.fanoutHosts).toBe("a,b");
    expect(config.host).toBe("127.0.0.1");
    expect(config.maxRequestBytes).toBe(4 * 1024 * 1024);
    expect(parseConfig(spec, [], { QUARTET_PORT: "8000" }).port).toBe(8000);
  });

  it("splits comma-separated lists", () => {
    const config = parseConfig(spec, ["--cors-origins", "http://a.test, https://b.test:*"], {});
    expect(config.corsOrigins).toEqual(["http://a.test", "https://b.test:*"]);
  });

  it("names the setting and the problem when a value is invalid", () => {
    expect(() => parseConfig(spec, ["--port", "70000"], {})).toThrow(ConfigError);
    expect(() => parseConfig(spec, ["--port", "70000"], {})).toThrow(
      /--port \/ QUARTET_PORT \("70000"\)/,
    );
    expect(() => parseConfig(spec, [], { QUARTET_CLUSTER_TOKEN: "short" })).toThrow(
      /at least 16 characters/,
    );
  });

  it("refuses unknown flags and points to --help", () => {
    expect(() => parseConfig(spec, ["--prot", "1"], {})).toThrow(/--help/);
  });
});
