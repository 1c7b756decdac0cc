// The dashboard in real Chromium (the Debian binary, through playwright-core) against the
// whole suite as `npm start` runs it, on ports and a data directory of this test's own: every
// page shows live data, and the page's own controls move the system. Every wait is for a DOM
// state. It screenshots each page into a temporary directory, or with QUARTET_SCREENSHOTS=docs
// (`npm run screenshots -w @quartet/dashboard`) into docs/screenshots/, which the READMEs show:
// a test run leaves the checkout as it was.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startSuite } from "../../../scripts/suite-ports.ts";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const intoDocs = process.env.QUARTET_SCREENSHOTS === "docs";
const screenshots = intoDocs
  ? join(root, "docs/screenshots")
  : mkdtempSync(join(tmpdir(), "quartet-screenshots-"));
// Generous bounds for a loaded 2-core machine; the waits end as soon as the page shows the state.
const waitMs = 30_000;

let npm: ChildProcess | undefined;
let browser: Browser | undefined;
let page: Page;
let gateway: string;

/** Starts the suite as a user does, or uses one already running (QUARTET_DASHBOARD_TEST_SUITE). */
async function suite(): Promise<{ base: number; dataDir: string }> {
  // "<port base>:<data dir>" of an `npm start` already running, to iterate on the pages.
  const running = process.env.QUARTET_DASHBOARD_TEST_SUITE?.split(":");
  if (running) return { base: Number(running[0]), dataDir: running.slice(1).join(":") };
  const suite = await startSuite(41, "dashboard");
  npm = suite.npm;
  return { base: suite.base, dataDir: suite.dataDir };
}

beforeAll(async () => {
  const launching = chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  const { base, dataDir } = await suite();
  browser = await launching;
  gateway = `http://127.0.0.1:${base + 980}`;
  const token = readFileSync(join(dataDir, "cluster-token"), "utf8").trim();
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  // As npm start prints it: the credential in the fragment, which the page keeps for the tab.
  await page.goto(`${gateway}/#token=${token}`);
  mkdirSync(screenshots, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (npm?.pid) {
    try {
      process.kill(-npm.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  if (!intoDocs) rmSync(screenshots, { recursive: true, force: true });
});

async function open(path: string): Promise<void> {
  await page.goto(`${gateway}/${path}`);
  await page.locator(`main[data-page="${path.slice(2)}"]`).waitFor();
}

/** Waits until the page shows `selector` (optionally holding `text`). */
async function shows(selector: string, text?: string): Promise<void> {
  const found = page.locator(selector, text ? { hasText: text } : {});
  await found.first().waitFor({ timeout: waitMs });
}

test("the page takes the credential out of the address bar", async () => {
  expect(new URL(page.url()).hash).not.toContain("token");
  expect(await page.evaluate("sessionStorage.getItem('quartet-token')")).toBeTruthy();
  await shows("#credential", "admin controls on");
});

test("Raft: three live members; killing the leader from the page shows a new leader; isolating a member turns its arrow red", async () => {
  await open("#/raft");
  const main = page.locator("main");
  const live = main.locator("tr[data-member]:not([data-role='down'])");
  await expect.poll(() => live.count(), { timeout: waitMs }).toBe(3);
  await shows("main[data-leader]:not([data-leader=''])");
  const leader = (await main.getAttribute("data-leader"))!;
  const term = BigInt((await main.getAttribute("data-term"))!);
  // Write a key from the page and see it applied on every member.
  await page.locator("form.control button[type=submit]").click();
  await shows("#actions li", "put demo/greeting revision");
  await shows("#write-status", "applied on 3 of 3");

  await main.locator(`tr[data-member="${leader}"] button[data-action="kill"]`).click();
  // A leader of a later term: another member, or the killed one if the supervisor restarted
  // it (after a 250 ms backoff) in time to win the election.
  let now = "";
  try {
    await expect
      .poll(
        async () => {
          const [id, shownTerm] = await main.evaluate((el) => [el.dataset.leader, el.dataset.term]);
          if (id && shownTerm && BigInt(shownTerm) > term) now = id;
          return now;
        },
        { timeout: waitMs },
      )
      .not.toBe("");
  } catch (e) {
    // What the page showed instead (members, timeline, the actions' answers), to tell a kill
    // that did not happen from an election that did not end.
    console.error(
      `the Raft page ${waitMs} ms after killing member ${leader}:\n${await main.innerText()}`,
    );
    throw e;
  }
  // The timeline has the change, newest first.
  await expect
    .poll(() => page.locator("#leader-changes li").count(), { timeout: waitMs })
    .toBeGreaterThanOrEqual(2);
  // Isolate a follower of the new leader from the page (it lasts until healed): its arrow from
  // the leader turns to red dashes, and back.
  await expect.poll(() => live.count(), { timeout: waitMs }).toBe(3);
  const ids = await main
    .locator("tr[data-member]")
    .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-member")));
  const follower = ids.find((id) => id !== now)!;
  const arrowTo = (reachable: boolean) =>
    page
      .locator(`main svg line[data-to="${follower}"][data-reachable="${reachable}"]`)
      .first()
      // Attached, not visible: a level arrow has a bounding box of no height, which
      // Playwright counts as hidden.
      .waitFor({ state: "attached", timeout: waitMs });
  await arrowTo(true);
  await main.locator(`tr[data-member="${follower}"] button[data-action="isolate"]`).click();
  await arrowTo(false);
  await page.screenshot({ path: join(screenshots, "raft.png") });
  await main.locator(`tr[data-member="${follower}"] button[data-action="heal"]`).click();
  await arrowTo(true);
});

test("circuit breaker: making a worker fail from the page opens its breaker on the page", async () => {
  await open("#/breaker");
  const cards = page.locator("main .card[data-breaker-state]");
  await expect.poll(() => cards.count(), { timeout: waitMs }).toBe(3);
  await page.locator("main input[name=traffic]").check();
  const address = (await cards.first().getAttribute("data-endpoint"))!;
  const card = `main .card[data-endpoint="${address}"]`;
  await page.locator(`${card} select[name=fail-fraction]`).selectOption("1");
  await page.locator(`${card} button[type=submit]`).click();
  await shows(`${card}:is([data-breaker-state="open"], [data-breaker-state="half_open"])`);
  await page.screenshot({ path: join(screenshots, "breaker.png") });
  // Heal it again for the pages that follow.
  await page.locator(`${card} select[name=fail-fraction]`).selectOption("0");
  await page.locator(`${card} button[type=submit]`).click();
  await shows("#actions li", "fault cleared");
});

test("load balancing: calls per worker per second, live; switching the picker draws its ring", async () => {
  await open("#/balancing");
  await page.locator("main input[name=traffic]").check();
  const busy = page.locator("main tr[data-endpoint]:not([data-rps='0.00'])");
  await expect.poll(() => busy.count(), { timeout: waitMs }).toBeGreaterThanOrEqual(2);
  // Switch to a hashing picker from the page: the route reports it, and the ring is drawn.
  await page.locator("main select[name=picker]").selectOption("ring_hash");
  await shows("main[data-picker='ring_hash']");
  await shows("#key-ownership[data-picker='ring_hash'] svg path");
  await expect
    .poll(async () => Number(await page.locator("#share-chart").getAttribute("data-updates")), {
      timeout: waitMs,
    })
    .toBeGreaterThanOrEqual(10);
  await page.screenshot({ path: join(screenshots, "balancing.png") });
});

test("queues: a message published from the page appears on the page's subscription", async () => {
  await open("#/queues");
  await page.locator("#subscribe button").click();
  await shows(".subscription[data-filter='demo.>'][data-ready='true']");
  await page.locator("#publish button").click();
  await shows(
    ".subscription[data-filter='demo.>'] li[data-subject='demo.hello']",
    "hello from the dashboard",
  );
  // A Compute job enqueued from the page: a worker takes it and its result arrives on the
  // page's subscription (demo.> covers demo.results).
  await page.locator("#enqueue button").click();
  await shows(".subscription[data-filter='demo.>'] li[data-subject='demo.results']", "computed");
  await shows("#broker-counts", "subscriptions");
  // The queue's figures move: the job was enqueued and acknowledged.
  await shows("main .card[data-queue='jobs']", "enqueued 1, acked 1");
  await page.screenshot({ path: join(screenshots, "queues.png") });
});
