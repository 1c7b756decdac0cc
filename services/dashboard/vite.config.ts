import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The browser app lives in app/ (DOM types, bundler resolution); the gateway serves dist/.
export default defineConfig({
  root: fileURLToPath(new URL("./app", import.meta.url)),
  base: "/",
  build: {
    outDir: fileURLToPath(new URL("./dist", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    // bigint literals and top-level await in the generated code need a modern target.
  },
  // `npm run dev -w services/dashboard` proxies calls to a running gateway (npm start).
  server: {
    proxy: {
      "^/(quartet|grpc)\\.": { target: process.env.QUARTET_GATEWAY_URL ?? "http://127.0.0.1:8080" },
      "/dashboard.json": { target: process.env.QUARTET_GATEWAY_URL ?? "http://127.0.0.1:8080" },
    },
  },
});
