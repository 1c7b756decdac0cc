import { readFileSync } from "node:fs";

/** Shortest cluster token accepted: a guessable secret protects nothing. */
export const minClusterTokenLength = 16;

/** Where the cluster token came from, for messages (never the token itself). */
export interface ClusterTokenSources {
  /** From QUARTET_CLUSTER_TOKEN. */
  clusterToken?: string | undefined;
  /** From --cluster-token-file / QUARTET_CLUSTER_TOKEN_FILE. */
  clusterTokenFile?: string | undefined;
}

/** Thrown for a cluster token that cannot be used; the message never contains the token. */
export class ClusterTokenError extends Error {}

/**
 * The cluster token from the environment (QUARTET_CLUSTER_TOKEN) or from a file
 * (--cluster-token-file / QUARTET_CLUSTER_TOKEN_FILE; one trailing newline is dropped), or
 * undefined when neither is set. Never from the command line: that is visible to every user
 * of the machine (ps, /proc) and used to reach telemetry.
 */
export function readClusterToken(sources: ClusterTokenSources): string | undefined {
  if (sources.clusterToken !== undefined && sources.clusterTokenFile !== undefined) {
    throw new ClusterTokenError(
      "both QUARTET_CLUSTER_TOKEN and --cluster-token-file / QUARTET_CLUSTER_TOKEN_FILE are set; set one",
    );
  }
  let token = sources.clusterToken;
  let origin = "QUARTET_CLUSTER_TOKEN";
  if (sources.clusterTokenFile !== undefined) {
    origin = `the cluster token file ${sources.clusterTokenFile}`;
    try {
      token = readFileSync(sources.clusterTokenFile, "utf8").replace(/\r?\n$/, "");
    } catch (e) {
      throw new ClusterTokenError(`cannot read ${origin}: ${(e as NodeJS.ErrnoException).code}`);
    }
  }
  if (token !== undefined && token.length < minClusterTokenLength) {
    throw new ClusterTokenError(
      `the cluster token in ${origin} is too short: use at least ${minClusterTokenLength} characters`,
    );
  }
  return token;
}

/** Like readClusterToken, but prints the problem and exits with code 2, as a binary should. */
export function loadClusterToken(sources: ClusterTokenSources, name: string): string | undefined {
  try {
    return readClusterToken(sources);
  } catch (e) {
    if (!(e instanceof ClusterTokenError)) throw e;
    process.stderr.write(`${name}: ${e.message}\n`);
    process.exit(2);
  }
}

/**
 * The message for a secret given as a flag, e.g. `--cluster-token`: it names the flag only,
 * and says where the secret belongs instead.
 */
export function secretFlagMessage(flag: string, env: string): string {
  return `${flag} is not accepted: a secret on the command line is visible to every user of the machine (ps, /proc) and to anything that records the command line. Set ${env} in the environment, or put it in a file and pass ${flag}-file / ${env}_FILE.`;
}
