/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// The gateway serves `dist/` (--web-dir). Hashed names under assets/ are cached for good;
// no inline script or style is emitted, so the gateway's strict CSP holds.
export default defineConfig({
  build: {
    outDir: "dist",
    assetsDir: "assets",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  server: { port: 5173 },
  test: { include: ["test/**/*.test.ts"], environment: "node" },
});
