import { readFileSync } from "node:fs";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { badArguments } from "./output.ts";

let tokenFileFlag: string | undefined;

/** `--cluster-token-file` (a path is not a secret; the token itself never comes from argv). */
export function setClusterTokenFile(path: string | undefined): void {
  tokenFileFlag = path;
}

/**
 * The cluster credential, from the file --cluster-token-file names, QUARTET_CLUSTER_TOKEN, or
 * the file QUARTET_CLUSTER_TOKEN_FILE names: never from argv, where other users of the
 * machine could read it in the process list.
 */
export function clusterToken(): string | undefined {
  if (tokenFileFlag) return readToken(tokenFileFlag, "--cluster-token-file");
  const inline = process.env.QUARTET_CLUSTER_TOKEN;
  if (inline) return inline.trim();
  const file = process.env.QUARTET_CLUSTER_TOKEN_FILE;
  return file ? readToken(file, "QUARTET_CLUSTER_TOKEN_FILE") : undefined;
}

function readToken(file: string, from: string): string {
  try {
    return readFileSync(file, "utf8").trim();
  } catch (e) {
    throw badArguments(
      `cannot read ${from} ${file}: ${(e as Error).message}`,
      "point it at a readable file",
    );
  }
}

export function checkUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error();
  } catch {
    throw badArguments(`not an http(s) URL: ${url}`, "pass e.g. http://127.0.0.1:7100");
  }
  return url.replace(/\/+$/, "");
}

/** Connect over HTTP/2 (streams in both directions work), with the credential if set. */
export function transportFor(baseUrl: string): Transport {
  const token = clusterToken();
  const auth: Interceptor = (next) => (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createConnectTransport({
    baseUrl: checkUrl(baseUrl),
    httpVersion: "2",
    interceptors: [auth],
  });
}
