// The app shell: navigation between one page per pattern (#/raft, #/breaker, #/balancing,
// #/queues), each mounted with an AbortSignal that stops its streams when the page changes.
import { adoptTokenFromFragment, token } from "./auth.ts";
import { fill, h } from "./dom.ts";
import { balancingPage } from "./pages/balancing.ts";
import { breakerPage } from "./pages/breaker.ts";
import { queuesPage } from "./pages/queues.ts";
import { raftPage } from "./pages/raft.ts";
import { config, loadConfig, mountActionLog } from "./trace.ts";

export interface Page {
  path: string;
  title: string;
  render(root: HTMLElement, signal: AbortSignal): void;
}

const pages: Page[] = [raftPage, breakerPage, balancingPage, queuesPage];

adoptTokenFromFragment();
await loadConfig();
mountActionLog(document.getElementById("actions")!);

const nav = document.getElementById("nav")!;
const root = document.getElementById("page")!;
let current: AbortController | undefined;

function show(): void {
  const path = location.hash.replace(/^#/, "") || "/raft";
  const page = pages.find((p) => p.path === path) ?? pages[0]!;
  fill(
    nav,
    ...pages.map((p) =>
      h("a", { href: `#${p.path}`, class: p === page ? "active" : undefined }, p.title),
    ),
  );
  current?.abort();
  current = new AbortController();
  root.replaceChildren();
  root.dataset.page = page.path.slice(1);
  document.title = `${page.title} · Quartet`;
  page.render(root, current.signal);
}

fill(
  document.getElementById("credential")!,
  !config.controls
    ? "fault controls are off in this deployment"
    : token()
      ? "admin controls on (credential in this tab)"
      : h(
          "span",
          { class: "warn" },
          "no credential: open the address `npm start` printed (…/#token=…) for the controls",
        ),
);
if (!config.controls) document.body.classList.add("no-controls");
window.addEventListener("hashchange", show);
show();
