// Serves the built dashboard (dist/, from `npm run build -w services/dashboard`) for the
// gateway: GET / and the hashed assets, plus /dashboard.json telling the page where Jaeger is
// and whether the fault controls are on. Files are read when asked for, so a build made after
// the gateway started (or ahead of it, in an image) is served as it is on disk.
import { readFile } from "node:fs/promises";
import type http from "node:http";
import type http2 from "node:http2";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

export const defaultDashboardDir = fileURLToPath(new URL("../dist", import.meta.url));

/** The gateway's dashboard settings (flags and QUARTET_* variables, with serve()'s others). */
export const dashboardSettings = {
  dashboardDir: {
    schema: z.string().min(1).default(defaultDashboardDir),
    help: "Directory of the built dashboard served at / (npm run build -w services/dashboard).",
  },
  dashboardControls: {
    schema: z.enum(["on", "off"]).default("on"),
    help: "off hides the dashboard's fault controls (admin calls still need the credential).",
  },
  jaegerUrl: {
    schema: z.url().optional(),
    help: "Jaeger UI base URL; the dashboard links each action's trace id there.",
  },
};

export interface DashboardOptions {
  dir: string;
  controls: boolean;
  jaegerUrl?: string | undefined;
}

const types: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".map": "application/json",
};

/**
 * A handler that answers the dashboard's paths and returns true, or returns false for any
 * other request (a call, a REST path) so the gateway handles it.
 */
export function createDashboardHandler(
  options: DashboardOptions,
): (req: Request, res: Response) => boolean {
  const root = normalize(options.dir);
  const configJson = JSON.stringify({
    jaegerUrl: options.jaegerUrl ?? "",
    controls: options.controls,
  });
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const path = (req.url ?? "/").split("?", 1)[0]!;
    const r = res as http.ServerResponse;
    if (path === "/dashboard.json") {
      r.writeHead(200, { "content-type": "application/json", "cache-control": "no-cache" });
      r.end(req.method === "HEAD" ? undefined : configJson);
      return true;
    }
    let relative: string;
    if (path === "/" || path === "/index.html") relative = "index.html";
    else if (path.startsWith("/assets/")) relative = decodeURIComponent(path.slice(1));
    else return false;
    const file = normalize(join(root, relative));
    if (!file.startsWith(root + sep)) return false;
    readFile(file).then(
      (body) => {
        // Vite names assets by content hash: they never change; index.html always may.
        const cache =
          relative === "index.html" ? "no-cache" : "public, max-age=31536000, immutable";
        r.writeHead(200, {
          "content-type": types[extname(file)] ?? "application/octet-stream",
          "content-length": body.length,
          "cache-control": cache,
        });
        r.end(req.method === "HEAD" ? undefined : body);
      },
      () => {
        const missing = relative === "index.html";
        r.writeHead(missing ? 503 : 404, { "content-type": "text/plain; charset=utf-8" });
        r.end(
          missing
            ? `The dashboard is not built in ${root}: run \`npm run build -w services/dashboard\` (npm start does it), or point --dashboard-dir / QUARTET_DASHBOARD_DIR at a build.\n`
            : `No dashboard asset ${path}\n`,
        );
      },
    );
    return true;
  };
}
