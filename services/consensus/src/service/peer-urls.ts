import { Code, ConnectError } from "@connectrpc/connect";

const maxUrls = 16;
const maxUrlLength = 2048;
const example = "http://10.0.0.4:7001";

/**
 * Checks a new member's peer URLs (MemberAddLearner) and returns them normalised as
 * `scheme://host:port`, the form --peers uses: a member is reached on the root of its one
 * port, so a path, query or credentials would be a mistake. InvalidArgument names the URL.
 */
export function checkPeerUrls(urls: readonly string[]): string[] {
  if (urls.length === 0) {
    throw invalid(`peer_urls is empty: give the new member's URL, like ${example}`);
  }
  if (urls.length > maxUrls) {
    throw invalid(`peer_urls has ${urls.length} URLs, over the limit of ${maxUrls}`);
  }
  const out: string[] = [];
  urls.forEach((raw, i) => {
    const what = `peer_urls[${i}] ${JSON.stringify(raw.slice(0, 100))}`;
    if (raw.length > maxUrlLength) {
      throw invalid(`${what} is ${raw.length} characters, over the limit of ${maxUrlLength}`);
    }
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw invalid(`${what} is not a URL: give one like ${example}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw invalid(`${what} has scheme ${url.protocol.slice(0, -1)}: use http or https`);
    }
    if (url.pathname !== "/" || url.search || url.hash || url.username || url.password) {
      throw invalid(
        `${what} has a path, query or credentials: give only scheme, host and port, like ${example}`,
      );
    }
    const normal = `${url.protocol}//${url.host}`;
    if (!out.includes(normal)) out.push(normal);
  });
  return out;
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
