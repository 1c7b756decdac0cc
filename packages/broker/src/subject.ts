import { BrokerError } from "./errors.ts";

/** Longest subject, in characters. */
export const MAX_SUBJECT_LENGTH = 256;
/** Longest token, in characters. */
export const MAX_TOKEN_LENGTH = 64;

// Printable ASCII without space, dot and the two wildcards.
const TOKEN_CHAR = /^[\x21-\x29\x2b-\x2d\x2f-\x3d\x3f-\x7e]+$/;

/**
 * Splits a subject into tokens and checks them. Publish subjects (`wildcards: false`) are
 * literal; filters may use `*` for one token and a final `>` for one or more tokens.
 * Throws an `invalid_argument` BrokerError naming the bad token and its position.
 * The tokens are frozen: literal subjects are cached and every caller gets the same array.
 */
export function parseSubject(subject: string, options: { wildcards: boolean }): readonly string[] {
  // Publishers reuse a few subjects: remember the ones already checked.
  if (!options.wildcards) {
    const known = literalCache.get(subject);
    if (known) return known;
    const tokens = checkSubject(subject, options);
    if (literalCache.size >= LITERAL_CACHE_LIMIT) literalCache.clear();
    literalCache.set(subject, tokens);
    return tokens;
  }
  return checkSubject(subject, options);
}

const LITERAL_CACHE_LIMIT = 4096;
const literalCache = new Map<string, readonly string[]>();

function checkSubject(subject: string, options: { wildcards: boolean }): readonly string[] {
  const what = options.wildcards ? "subject filter" : "subject";
  if (subject.length === 0)
    throw invalid(`${what} is empty; use dot-separated tokens such as "orders.eu.created"`);
  if (subject.length > MAX_SUBJECT_LENGTH) {
    throw invalid(
      `${what} is ${subject.length} characters long; the limit is ${MAX_SUBJECT_LENGTH}`,
    );
  }
  const tokens = subject.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const where = `token ${i + 1} of ${what} ${JSON.stringify(subject)}`;
    if (token.length === 0) throw invalid(`${where} is empty (leading, trailing or double dot)`);
    if (token === "*" || token === ">") {
      if (!options.wildcards) {
        throw invalid(
          `${where} is the wildcard ${JSON.stringify(token)}; publish subjects must be literal`,
        );
      }
      if (token === ">" && i !== tokens.length - 1) {
        throw invalid(`${where} is ">", which is only allowed as the last token`);
      }
      continue;
    }
    if (token.length > MAX_TOKEN_LENGTH) {
      throw invalid(
        `${where} is ${token.length} characters long; the limit is ${MAX_TOKEN_LENGTH}`,
      );
    }
    if (!TOKEN_CHAR.test(token)) {
      throw invalid(
        `${where} (${JSON.stringify(token)}) has a character outside printable ASCII or a wildcard inside a token`,
      );
    }
  }
  return Object.freeze(tokens);
}

/** True when a literal subject's tokens match a filter's tokens. The reference matcher. */
export function subjectMatches(filter: readonly string[], subject: readonly string[]): boolean {
  for (let i = 0; i < filter.length; i++) {
    const f = filter[i]!;
    if (f === ">") return subject.length > i;
    if (i >= subject.length) return false;
    if (f !== "*" && f !== subject[i]) return false;
  }
  return filter.length === subject.length;
}

function invalid(message: string): BrokerError {
  return new BrokerError("invalid_argument", message);
}
